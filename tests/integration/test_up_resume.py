"""`memup up` end to end on T-Maze-LNR-20 (about two minutes): stopped, resumed (and said so)
through a SIGKILL of its Redis, finished; run again it says "already finished" and touches
nothing; --fresh moves the run aside. Every process is real: redis-server, the roles, ZeroMQ
with the run's CURVE keys."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from common import keys
from common.checkpoint import load_checkpoint
from common.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
RUN = "tmaze-lnr-20"


def _up(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_tmaze_lnr_20.toml",
            "--set", f"run.dir={run_dir}", *extra]


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def _pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _resume_through_a_redis_kill(tmp_path: Path) -> subprocess.CompletedProcess:
    """The second `memup up`: SIGKILLs its redis-server once phase I has made progress."""
    proc = subprocess.Popen(_up(tmp_path, "--max-minutes", "4"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True),  # type: ignore[arg-type]
               threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)]  # type: ignore[arg-type]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            found = re.search(r"embedded Redis on 127\.0\.0\.1:(\d+)", "".join(err))
            port = int(found.group(1)) if found else None
            time.sleep(0.2)
        assert port is not None, "".join(err)
        time.sleep(8)  # the roles are up and writing
        roles = _pids(f"cli.main .*zmq.curve_keys={tmp_path / RUN / 'curve'}")
        assert len(roles) == 4, roles  # learner, scorer, two actors: all with the run's keys
        (server,) = _pids(rf"redis-server 127\.0\.0\.1:{port}( |$)")
        os.kill(server, signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:  # a failed check: stop it as Ctrl-C would (roles and Redis too)
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    for reader in readers:
        reader.join(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(out), "".join(err))


def test_stop_resume_finish_then_already_finished_then_fresh(tmp_path: Path) -> None:
    run_dir = tmp_path / RUN
    first = subprocess.run(_up(tmp_path, "--max-minutes", "0.3"), cwd=ROOT,
                           capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"resolved config in {run_dir / 'config.json'}" in first.stderr
    assert '{"run": {' not in first.stderr  # the config is a file, not a 2.6 kB log line
    assert json.loads((run_dir / "config.json").read_text())["run"]["name"] == RUN
    assert (run_dir / "redis" / "appendonly.aof").stat().st_size > 0
    assert (run_dir / "curve" / "server.key_secret").is_file()
    state = load_checkpoint(run_dir / "checkpoints" / "learner.pt")
    assert not state["done"]
    phase = int(state["phase"])
    update = int(state["ppo_updates" if phase == 2 else "memup_updates"])
    resumed_line = (f"resumed from update {update} (phase {phase}), "
                    f"{int(state['env_steps']):,} env steps")

    second = _resume_through_a_redis_kill(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert resumed_line in second.stderr
    assert "exited (code -9); restarted it" in second.stderr, second.stderr
    assert f"run {RUN}: finished after" in second.stderr, second.stderr[-3000:]
    assert "phase II (policy)" in second.stdout.strip().splitlines()[-1]  # not "starting"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["phase"] == 2 and records[-1]["env_steps"] >= int(state["env_steps"])

    before = _tree(tmp_path)
    started = time.monotonic()
    third = subprocess.run(_up(tmp_path, "--max-minutes", "2"), cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    (line,) = third.stderr.strip().splitlines()
    assert line.startswith(f"already finished: {RUN}: phase I: memory accuracy ")
    assert f"phase II: success {records[-1]['success']:.3f}" in line
    assert line.endswith(f"; results in {run_dir}")
    assert _tree(tmp_path) == before  # not one file written, not even Redis's log
    assert time.monotonic() - started < 60

    # --fresh against an external Redis: the run's old keys go, the old directory moves.
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.set(keys.env_steps_key(RUN), 123_456)
        client.set("memup:other-run:env_steps", 1)
        fourth = subprocess.run(_up(tmp_path, "--fresh", "--max-minutes", "0.05"), cwd=ROOT,
                                capture_output=True, text=True, timeout=180,
                                env={**os.environ, "REDIS_URL": server.url})
        assert fourth.returncode == 0, fourth.stderr[-3000:]
        assert int(client.get(keys.env_steps_key(RUN)) or 0) < 123_456  # counted from 0
        assert client.get("memup:other-run:env_steps") == b"1"  # another run's keys stay
    moved = re.search(r"--fresh: moved the old \S+ aside to (\S+)", fourth.stderr)
    assert moved is not None, fourth.stderr[-3000:]
    aside = Path(moved.group(1))
    assert re.fullmatch(rf"{RUN}\.\d{{8}}T\d{{6}}Z", aside.name)
    assert load_checkpoint(aside / "checkpoints" / "learner.pt")["done"]
    assert _tree(aside) == {k[len(RUN) + 1:]: v for k, v in before.items()}
    assert "already finished" not in fourth.stderr and "resumed from" not in fourth.stderr
    assert (run_dir / "config.json").is_file()
