"""Every config key and flag the CLI suggests exists: in error messages, help texts and the
examples of every ``--help`` epilog (a hint naming a missing key sends a user astray)."""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import get_type_hints

import pytest

from cli.main import build_parser
from common.config import ClusterConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {name: set(get_type_hints(kind)) for name, kind in
            get_type_hints(ClusterConfig).items()}
SOURCES = sorted([*(ROOT / "cli").rglob("*.py"), ROOT / "common" / "config.py",
                  ROOT / "common" / "config_checks.py"])
# section.word that names a file, not a key: learner.pt, learner.log, learner.key_secret
FILE_SUFFIXES = {"pt", "log", "key", "key_secret", "json", "jsonl", "toml", "png", "gif",
                 "mp4", "py", "aof", "pid"}
DOTTED = re.compile(r"(?<![\w./-])(" + "|".join(SECTIONS) + r")\.([a-z_][a-z0-9_]*)")
ENV = re.compile(r"\bMEMUP_([A-Z]+)_([A-Z0-9_]+)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal of a module (f-strings: their literal parts)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def _examples() -> list[tuple[str, str]]:
    """``(prog, command line)`` of every ``memup …`` example in an epilog."""
    found = []
    for parser in _parsers(build_parser()):
        text = (parser.epilog or "").replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            words = shlex.split(line) if line else []
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)  # REDIS_URL=... memup ...
            if words[:1] == ["memup"]:
                found.append((parser.prog, shlex.join(words)))
    return found


def test_every_config_key_named_in_messages_and_help_exists() -> None:
    wrong = []
    for path in SOURCES:
        for line, text in _strings(path):
            for section, key in DOTTED.findall(text):
                if key not in SECTIONS[section] and key not in FILE_SUFFIXES:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {section}.{key}")
            for section, key in ENV.findall(text):
                section, key = section.lower(), key.lower()
                if section in SECTIONS and key not in SECTIONS[section]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: MEMUP_{section}_{key}")
    assert not wrong, "hints naming config keys that do not exist:\n" + "\n".join(wrong)


def _defined_flags() -> set[str]:
    """Options of every memup parser, and of the helper scripts' own parsers
    (``python -m cli.bench_memory --method ...``)."""
    flags = {option for parser in _parsers(build_parser()) for action in parser._actions
             for option in action.option_strings}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_argument"):
                flags.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return flags


def test_every_flag_named_in_messages_and_help_exists() -> None:
    flags = _defined_flags()
    wrong = [f"{path.relative_to(ROOT)}:{line}: {flag}" for path in SOURCES
             for line, text in _strings(path) for flag in FLAG.findall(text)
             if flag not in flags]
    assert not wrong, "hints naming flags no memup command has:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("prog", "command"), _examples())
def test_every_help_example_parses_and_names_real_keys(prog: str, command: str) -> None:
    words = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{prog} --help example does not parse ({exc.code}): {command}")
    overrides = getattr(args, "overrides", [])
    load_config(None, overrides, environ={})  # raises ConfigError for an unknown key
    for name in ("config", "cluster_config"):
        path = getattr(args, name, None)
        if path is not None and str(path).startswith("configs/"):
            assert (ROOT / path).is_file(), f"{command}: no {path}"
            if name == "cluster_config":
                load_config(ROOT / path, overrides, environ={})
