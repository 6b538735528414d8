"""The MemUP core (memup/) imports only torch, numpy, the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "memup"
FORBIDDEN = {
    "redis", "zmq", "msgpack", "vizdoom", "prometheus_client", "gymnasium", "tqdm",
    "matplotlib", "actor", "scorer", "learner", "common", "cli",
}
ALLOWED = {"torch", "numpy", "memup", "__future__"} | set(sys.stdlib_module_names)


def imported_roots(tree: ast.AST) -> list[tuple[str, int]]:
    """Top-level package of every absolute import in ``tree``, with its line."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.append((node.module.split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.append((str(node.args[0].value).split(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant):
                roots.append((str(node.args[0].value).split(".")[0], node.lineno))
    return roots


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_files_are_found() -> None:
    names = {p.name for p in core_files()}
    assert {"memory.py", "targets.py", "update.py", "training.py"} <= names


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_core_imports_only_allowed_packages(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [(root, line) for root, line in imported_roots(tree)
           if root in FORBIDDEN or root not in ALLOWED]
    assert not bad, f"{path.relative_to(CORE.parent)} imports {bad}"


def test_checker_catches_forbidden_imports() -> None:
    source = (
        "import os\nimport redis\nfrom common.runlog import RunLog\n"
        "from . import memory\nimport torch.nn\nimport importlib\n"
        "importlib.import_module('gymnasium')\n"
    )
    roots = {root for root, _ in imported_roots(ast.parse(source))}
    assert roots == {"os", "redis", "common", "torch", "importlib", "gymnasium"}
    assert roots & FORBIDDEN == {"redis", "common", "gymnasium"}
