"""End to end: `memup up` on T-Maze-LNR-20 — embedded Redis, 2 actors, a scorer, a learner.

Every part is real: a redis-server process, role subprocesses, ZeroMQ over loopback TCP.
The run must pass phase I (memory) and phase II (PPO) on its own within the time limit. The
limit is far above the usual minute: under the full suite on two cores phase I once sat on
the clue-XOR saddle past an earlier 4-minute cap (accuracy 0.0), which is slowness, not a
broken pipeline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_memup_up_trains_memory_then_policy(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_tmaze_lnr_20.toml",
         "--set", f"run.dir={tmp_path}", "--max-minutes", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=570)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "tmaze-lnr-20"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    one = [r for r in records if r["phase"] == 1]
    two = [r for r in records if r["phase"] == 2]
    # Chance is far below this: a memory without the clue gets |error| < 0.3 on ~no
    # final step (the reward is +4 or -3); the run ends phase I only at 0.95.
    assert one and one[-1]["memory_accuracy"] >= 0.9, one[-3:]
    assert two and two[-1]["success"] >= 0.9, two[-3:]
    assert two[-1]["episodes"] == 32
    logs = sorted(p.name for p in (run / "logs").iterdir())
    assert logs == ["actor-0.log", "actor-1.log", "learner.log", "scorer-0.log"]
    assert "finished after" in proc.stderr
    assert (run / "checkpoints" / "learner.pt").is_file()
    assert (run / "phase1_memory_accuracy.png").is_file() and (run / "phase2_success.png").is_file()
    # The final policy, evaluated in-process on fresh episodes, greedy.
    evaluated = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", str(run), "--episodes", "50", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["greedy"]["success"] >= 0.9
    # Both actors really played: each published fragments.
    for name in ("actor-0", "actor-1"):
        assert "stopped after" in (run / "logs" / f"{name}.log").read_text()


def test_joint_and_lstm_modes_run_through_the_same_pipeline(tmp_path: Path) -> None:
    """The joint mode and the PPO-LSTM baseline train PPO from the start, in one minute."""
    for mode in ("joint", "lstm"):
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_tmaze_lnr_20.toml",
             "--set", f"run.dir={tmp_path}", "--set", f"run.name=m-{mode}",
             "--set", f"ppo.mode={mode}", "--set", "ppo.memup_updates_per_ppo=10",
             "--set", "ppo.episodes_per_update=16", "--max-minutes", "0.75"],
            cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run = tmp_path / f"m-{mode}"
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ppo = [r for r in records if r["phase"] == 2]
        assert len(ppo) >= 3, (mode, records[-3:])
        assert not [r for r in records if r["phase"] == 1]  # no separate memory phase
        # joint: MemUP updates between PPO updates; lstm: none at all
        memup_updates = ppo[-1]["memup_update"]
        assert memup_updates >= 10 * (len(ppo) - 1) if mode == "joint" else memup_updates == 0
        for log in (run / "logs").iterdir():
            assert "Traceback" not in log.read_text(), (mode, log.name)


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _counted_env_steps(run: Path, name: str) -> int:
    """The run's env-step count as its own Redis kept it (started again on its AOF)."""
    from common import keys
    from common.embedded_redis import EmbeddedRedis
    from common.redis_io import connect

    with EmbeddedRedis(data_dir=str(run / "redis"), appendonly=True) as server:
        r = connect(server.url)
        try:
            return int(r.get(keys.env_steps_key(name)) or 0)
        finally:
            r.close()


def test_a_stopped_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Ctrl-C `memup up` during phase I, run the same command again: the learner continues
    from its checkpoint (updates and weights versions go on, never back), the env-step count
    goes on from where it was (within what the actors had not finished), and it finishes."""
    command = [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_tmaze_lnr_20.toml",
               "--set", f"run.dir={tmp_path}", "--set", "run.name=resumed",
               "--set", "memup.target_accuracy=1.01"]  # phase I cannot end in the first part
    run = tmp_path / "resumed"
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 150
    while len(_records(run)) < 3 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-3000:]
    before = _records(run)
    assert before and before[-1]["phase"] == 1
    stopped_at = before[-1]["update"]
    second = subprocess.run([*command[:-2], "--max-minutes", "3"], cwd=ROOT,
                            capture_output=True, text=True, timeout=330)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from update" in second.stderr
    log = (run / "logs" / "learner.log").read_text()
    assert "resumed from" in log
    after = _records(run)
    updates = [r["update"] for r in after if r["phase"] == 1]
    assert updates == sorted(updates)  # the count continued, it did not restart at 0
    assert max(updates) > stopped_at
    assert after[-1]["phase"] == 2 and after[-1]["success"] >= 0.9
    # Env steps: what both runs counted equals what the actors played, less the steps of the
    # episodes they had not finished at each of the two stops (at most one fragment per env).
    played = sum(int(m) for name in ("actor-0", "actor-1") for m in re.findall(
        r"stopped after (\d+) env steps", (run / "logs" / f"{name}.log").read_text()))
    counted = _counted_env_steps(run, "resumed")
    assert 0 <= played - counted <= 2 * 2 * 8 * 128, (played, counted)
    # A finished run stays finished: a third start trains nothing and changes nothing.
    third = subprocess.run([*command[:-2], "--max-minutes", "2"], cwd=ROOT,
                           capture_output=True, text=True, timeout=180)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "already finished" in third.stderr
    assert _records(run) == after


def test_a_killed_learner_is_restarted_and_resumes(tmp_path: Path) -> None:
    """SIGKILL the learner mid-run: the supervisor restarts it, it loads its newest periodic
    checkpoint (weights versions continue) and the run still finishes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_tmaze_lnr_20.toml",
         "--set", f"run.dir={tmp_path}", "--set", "run.name=killed",
         "--set", "learner.checkpoint_every_s=2", "--max-minutes", "8"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "killed"
    checkpoint = run / "checkpoints" / "learner.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert checkpoint.is_file(), "no periodic checkpoint"
    time.sleep(3)
    pids = subprocess.run(["pgrep", "-f", f"cli.main learner .*run.dir={tmp_path}"],
                          capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, pids
    os.kill(int(pids[0]), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=540)
    assert proc.returncode == 0, stderr[-3000:]
    log = (run / "logs" / "learner.log").read_text()
    assert log.count("resumed from") == 1
    assert "exited with code -9; restarting" in stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["phase"] == 2 and records[-1]["success"] >= 0.9
