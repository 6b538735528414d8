"""No role, common/, memup/ or rl/ module names a task, and no cli/ module branches on one:
they ask the task (tasks/).

Comments and docstrings may name a task as an example; code may not: no identifier, import
or string literal outside docstrings matches :data:`TASK_NAME`. The one exception is the
config's default run, which has to name some task. In cli/, whose task-specific commands
(``memup scenario two-colors``, ``memup train tmaze-memory``) import their task, only
branching counts: no task name compared with, looked up as a dict key, offered as a
``choices=`` value or matched (:func:`task_branches`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("memup", "rl", "common", "actor", "scorer", "learner")
TASK_NAME = re.compile(
    r"two.?colou?rs|t.?maze|vizdoom|popgym|minigrid"
    # The supervised sequence tasks (tasks/sequence/): "copy" and "add" are everyday words,
    # so only their unmistakable identifiers count.
    r"|scattered.?copy|sequence.?tasks|tasks\.sequence|copy_episodes|add_episodes"
    r"|recall_symbols|copy_classes|copy_vocab|copy_nets|add_nets",
    re.IGNORECASE)
DEFAULTS = {("common/config.py", "tmaze-lnr"), ("common/config.py", "tmaze")}
"""The default run of a config file that names no task: ``run.name`` and ``task.env``."""


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or attribute docstrings."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                found.add(id(stmt.value))
    return found


def names_in_code(source: str) -> list[tuple[int, str]]:
    """(line, text) of every identifier, import and non-docstring string naming a task."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            texts = [node.name]
        elif isinstance(node, ast.arg):
            texts = [node.arg]
        elif isinstance(node, ast.alias):
            texts = [node.name, node.asname or ""]
        elif isinstance(node, ast.ImportFrom):
            texts = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in skip:
            texts = [node.value]
        hits += [(getattr(node, "lineno", 0), t) for t in texts if TASK_NAME.search(t)]
    return hits


def package_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_tasks_names_a_task(path: Path) -> None:
    where = str(path.relative_to(ROOT))
    found = [(line, text) for line, text in names_in_code(path.read_text())
             if (where, text) not in DEFAULTS]
    assert not found, f"{where} names a task in code: {found} (ask the task instead)"


def test_the_checker_sees_code_and_skips_docstrings() -> None:
    source = ('"""T-Maze here is fine."""\n'
              "def f(x):\n    'Two-Colors, fine too.'\n"
              "    # tmaze in a comment is fine\n"
              "    if x == 'two-colors':\n        return tmaze_nets()\n"
              "import vizdoom\n"
              "from tasks.sequence import copy_episodes\n"
              "def add(copy, scattered=True):\n    'Scattered Copy and Add, fine.'\n"
              "    return copy.add(SCATTERED_COPY)\n")
    assert sorted(t for _, t in names_in_code(source)) == [
        "SCATTERED_COPY", "copy_episodes", "tasks.sequence", "tmaze_nets", "two-colors",
        "vizdoom"]


def task_branches(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string naming a task that code branches or looks up on: a
    side of a comparison (``==``, ``!=``, ``in``; tuples, lists and sets there too), a dict
    key, a ``choices=`` value or a ``match`` case; help texts, examples and defaults pass."""
    tree = ast.parse(source)
    places: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            places += [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            places += [key for key in node.keys if key is not None]
        elif isinstance(node, ast.keyword) and node.arg == "choices":
            places.append(node.value)
        elif isinstance(node, ast.MatchValue):
            places.append(node.value)
    hits = []
    for place in places:
        for node in ast.walk(place):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and TASK_NAME.search(node.value):
                hits.append((node.lineno, node.value))
    return hits


@pytest.mark.parametrize("path", sorted((ROOT / "cli").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cli_module_branches_on_a_task_name(path: Path) -> None:
    where = str(path.relative_to(ROOT))
    found = task_branches(path.read_text())
    assert not found, f"{where} branches on a task name: {found} (ask the task instead)"


def test_the_cli_checker_sees_branches_and_skips_help_texts() -> None:
    source = ('"""memup bench env --env tmaze"""\n'
              'p.add_argument("--env", default="two-colors", help="two-colors or tmaze")\n'
              'p.add_argument("--x", choices=["tmaze", "other"])\n'
              'if args.env == "two-colors" or "T-Maze" != name or env in ("vizdoom", "a"):\n'
              '    pass\n'
              'BASE = {"popgym": 1, "b": "two-colors"}\n'
              'match env:\n    case "minigrid":\n        pass\n')
    assert sorted(t for _, t in task_branches(source)) == [
        "T-Maze", "minigrid", "popgym", "tmaze", "two-colors", "vizdoom"]
