"""The fault suite's marker and where its records go.

Every test here starts a real ``memup up`` (redis-server, learner, scorer, two actors) and
injects one kind of fault; they run by default (CI included) and take about 13 minutes
together on two cores. Deselect them with ``-m "not faults"``; keep their records with
``MEMUP_FAULT_RESULTS=DIR`` (one ``<fault>.json`` each).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: real clusters with faults injected (minutes)")


@pytest.fixture(scope="session")
def fault_results() -> Path | None:
    """The folder named by ``MEMUP_FAULT_RESULTS`` (created), or None."""
    folder = os.environ.get("MEMUP_FAULT_RESULTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path
