"""Starts the CLI tests' commands right after collection so they overlap with other tests.

Each ``memup`` subprocess spends seconds importing torch. When the session holds tests of
test_cli.py, all their independent commands start in the background once collection ends,
and those tests are moved to the end of the run: the unit tests run meanwhile. Each CLI
test then waits for the command it checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.clijobs import JobSet

JOBS = pytest.StashKey[JobSet]()


def _is_cli_test(item: pytest.Item) -> bool:
    return item.path.name == "test_cli.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = [i for i in items if not _is_cli_test(i)] + [i for i in items if _is_cli_test(i)]


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(_is_cli_test(i) for i in session.items):
        session.config.stash[JOBS] = JobSet()


def pytest_sessionfinish(session: pytest.Session) -> None:
    jobs = session.config.stash.get(JOBS, None)
    if jobs is not None:
        jobs.close()


@pytest.fixture(scope="session")
def cli_jobs(request: pytest.FixtureRequest) -> Iterator[JobSet]:
    jobs = request.config.stash.get(JOBS, None)
    if jobs is None:  # not started after collection (e.g. the hook was bypassed)
        jobs = request.config.stash[JOBS] = JobSet()
    yield jobs
