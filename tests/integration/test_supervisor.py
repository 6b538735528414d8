"""The supervisor of `memup up`: crashed roles and a killed Redis come back with backoff, a
finished learner ends the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from cli.supervisor import Child, RedisKeeper, Supervisor
from common.embedded_redis import EmbeddedRedis
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


def test_a_killed_embedded_redis_is_restarted_with_its_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGKILL the redis-server: the keeper starts it again on the same port, password and
    AOF dir (children's REDIS_URL stays valid), logs it once and counts it."""
    metrics = SupervisorMetrics()
    with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True) as server:
        url, port = server.url, server.port
        keeper = RedisKeeper(server, metrics, Backoff(base=0.2, cap=0.2))
        redis.Redis.from_url(url).set("memup:r:env_steps", 777)
        found = subprocess.run(["pgrep", "-f", f"redis-server 127.0.0.1:{port}"],
                               capture_output=True, text=True).stdout.split()
        assert found == [str(server.pid)]  # the fault tests find it by this title
        os.kill(int(found[0]), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while keeper.restarts == 0 and time.monotonic() < deadline:
            keeper.poll()
            time.sleep(0.05)
        assert keeper.restarts == 1 and server.url == url and server.port == port
        assert redis.Redis.from_url(url).get("memup:r:env_steps") == b"777"
        keeper.poll()  # running: nothing to do
        assert keeper.restarts == 1
    assert sample_value(metrics.registry, "memup_supervisor_component_restarts_total",
                        {"role": "redis"}) == 1
    said = [r.getMessage() for r in caplog.records if r.name == "cli.supervisor"]
    assert len(said) == 1 and "exited (code -9); restarted it" in said[0], said
