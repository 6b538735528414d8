"""Shared command-line plumbing: config files under flags, device choice, help formatting."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch



class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the hand-formatted examples in epilogs."""


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file of flag values (keys as flag names with underscores); "
                             "flags on the command line win over it")


def parse_with_config(parser: argparse.ArgumentParser, leaf: argparse.ArgumentParser,
                      argv: list[str]) -> argparse.Namespace:
    """Parses ``argv`` with precedence defaults < ``--config`` file < explicit flags.

    Args:
        parser: the root parser.
        leaf: the parser of the subcommand ``argv`` names (the one ``--config`` fills).
        argv: the command line.

    Raises:
        SystemExit: via ``parser.error`` for an unreadable file or an unknown key in it.
    """
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path is None:
        return args
    try:
        values: dict[str, Any] = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        leaf.error(f"cannot read config {path}: {exc}")
    known = {a.dest for a in leaf._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        leaf.error(f"config {path} has unknown keys {unknown}; valid keys: "
                   f"{sorted(known - {'help', 'config'})}")
    leaf.set_defaults(**values)
    return parser.parse_args(argv)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    import torch  # here, not at the top: `memup --help` should not pay for importing torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine; "
                         "use --device cpu or auto")
    return device
