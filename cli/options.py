"""Shared command-line plumbing: config files under flags, device choice, help formatting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cli.train_config import config_values
from common.config import ConfigError
from common.config_renames import Renamed, train_message

if TYPE_CHECKING:
    import torch


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the hand-formatted examples in epilogs."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose mistakes are one line on stderr and exit code 2.

    Subcommand parsers inherit the class, so every ``memup`` command reports this way.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (sizes, lengths, counts)."""
    return _int_from(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0 (0 meaning none or a default)."""
    return _int_from(text, 0, "an integer >= 0")


def _int_from(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


class RenamedFlag(argparse.Action):
    """A flag that was renamed or removed: using it fails with one line naming its
    replacement (hidden from --help; a config file's key of its name fails the same way)."""

    def __init__(self, option_strings: Sequence[str], dest: str, renamed: Renamed,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        self.renamed = renamed

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(train_message(self.dest, self.renamed, flag=True))


def add_renamed_flags(parser: argparse.ArgumentParser, renames: Mapping[str, Renamed]) -> None:
    """Registers each old flag of ``renames`` (old key -> replacement) as a :class:`RenamedFlag`."""
    for old, entry in renames.items():
        parser.add_argument("--" + old.replace("_", "-"), dest=old, action=RenamedFlag,
                            renamed=entry)


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file in memup up's format: [memup] lr, [task] length, ... "
                             "as there, other flags in [train] by name (max_minutes); "
                             "flags on the command line win over it (docs/configuration.md)")


def parse_with_config(parser: argparse.ArgumentParser, leaf: argparse.ArgumentParser,
                      argv: list[str]) -> argparse.Namespace:
    """Parses ``argv`` with precedence defaults < ``--config`` file < explicit flags.

    Args:
        parser: the root parser.
        leaf: the parser of the subcommand ``argv`` names (the one ``--config`` fills).
        argv: the command line.

    Raises:
        SystemExit: via ``parser.error`` (one line) for an unreadable file, or an unknown,
            renamed or unused key or a bad value in it (:mod:`cli.train_config`).
    """
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path is None:
        return args
    everything = {a.dest: a for a in leaf._actions}
    renamed = {dest: a.renamed for dest, a in everything.items() if isinstance(a, RenamedFlag)}
    actions = {dest: a for dest, a in everything.items()
               if dest not in ("help", "config") and dest not in renamed}
    try:
        values = config_values(Path(path), actions, renamed)
    except ConfigError as exc:
        leaf.error(str(exc))
    leaf.set_defaults(**{dest: _checked(leaf, where, actions[dest], value)
                         for dest, (where, value) in values.items()})
    return parser.parse_args(argv)


def _checked(leaf: argparse.ArgumentParser, where: str, action: argparse.Action,
             value: Any) -> Any:
    """A config file's value checked as the flag's own would be (argparse skips ``type``
    and ``choices`` for defaults that are not strings)."""
    if action.type is not None and not isinstance(value, bool):
        try:
            value = action.type(value if isinstance(value, str) else str(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            leaf.error(f"{where} = {value!r}: {exc}")
    if action.choices is not None and value not in action.choices:
        leaf.error(f"{where} = {value!r}: use one of "
                   f"{', '.join(map(str, action.choices))}")
    return value


def fail(message: str, code: int = 2) -> NoReturn:
    """Ends a command on a user mistake: ``memup: <message>`` on stderr, no traceback."""
    print(f"memup: {message}", file=sys.stderr)
    raise SystemExit(code)


def resolve_device(name: str, what: str = "--device") -> torch.device:
    """``auto`` → CUDA when present, else CPU; anything else is passed to ``torch.device``.

    Args:
        name: the device name.
        what: where it was given (``--device``, ``run.device``), for the message.

    Raises:
        SystemExit: (code 2, one line) an unknown device, or one this machine lacks.
    """
    import torch  # here, not at the top: `memup --help` should not pay for importing torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = torch.device("meta")  # refused just below
    if device.type not in ("cpu", "cuda", "mps"):
        fail(f"{what} {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"{what} {name}: CUDA is not available on this machine; use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        fail(f"{what} {name}: MPS is not available on this machine; use cpu or auto")
    return device
