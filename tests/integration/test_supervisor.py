"""The supervisor of `memup up`: crashed roles come back with backoff, a finished learner ends."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cli.supervisor import Child, Supervisor
from common.lifecycle import Backoff
from common.metrics import SupervisorMetrics, sample_value


def _child(name: str, role: str, code: str, tmp: Path) -> Child:
    return Child(name, role, [sys.executable, "-c", code], tmp / f"{name}.log",
                 backoff=Backoff(base=0.05, cap=0.1))


def test_crashed_roles_restart_and_a_finished_learner_ends_the_run(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    crash = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    learner = "import time; time.sleep(1.5)"
    metrics = SupervisorMetrics()
    sup = Supervisor([_child("actor-0", "actor", crash, tmp_path),
                      _child("learner-0", "learner", learner, tmp_path)],
                     dict(os.environ), metrics)
    sup.start()
    deadline = time.monotonic() + 20
    while sup.finished is None and time.monotonic() < deadline:
        sup.poll()
        time.sleep(0.05)
    sup.stop()
    assert sup.finished is not None and sup.finished.name == "learner-0"
    starts = len(marker.read_text())
    assert starts >= 3  # the crashing actor was started again and again
    restarts = sample_value(metrics.registry, "memup_supervisor_component_restarts_total",
                            {"role": "actor"})
    # Every start after the first is a counted restart; the last one may have been stopped
    # before it wrote its mark.
    assert starts - 1 <= restarts <= starts


def test_stop_terminates_running_children(tmp_path: Path) -> None:
    sup = Supervisor([_child("scorer-0", "scorer", "import time; time.sleep(60)", tmp_path)],
                     dict(os.environ), SupervisorMetrics())
    sup.start()
    proc = sup.children[0].process
    assert proc is not None and proc.poll() is None
    started = time.monotonic()
    sup.stop()
    assert proc.poll() is not None and time.monotonic() - started < 10
