"""End to end on ViZDoom Two-Colors: frames through the whole cluster, then eval and probe.

A deliberately small run (short episodes, few lanes, a tiny budget): real ViZDoom actors
publish compressed uint8 frames into a real Redis, the scorer marks them with the CNN
memory, the learner trains MemUP on segments over ZeroMQ, switches to PPO on the frozen
memory when its update budget is spent, and finishes on its env-step budget. Learning
quality is measured by the runs in docs/results.md, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SMALL = ["run.name=tc-e2e", "task.length=120", "actor.replicas=1", "actor.envs=4",
         "memup.lanes=4", "memup.rollout=8", "memup.max_updates=30", "memup.min_replay=4",
         "memup.warmup_episodes=8", "memup.publish_every=10", "ppo.episodes_per_update=8",
         "ppo.max_env_steps=12000", "scorer.replay_episodes=16"]


def test_two_colors_cluster_trains_then_evaluates_and_records(tmp_path: Path) -> None:
    sets = [arg for item in [*SMALL, f"run.dir={tmp_path}"] for arg in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_two_colors.toml",
         *sets, "--max-minutes", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "tc-e2e"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    one = [r for r in records if r["phase"] == 1]
    two = [r for r in records if r["phase"] == 2]
    assert one and one[-1]["update"] == 30 and one[-1]["scored"] > 0
    assert two and two[-1]["env_steps"] >= 12000 and two[-1]["episodes"] == 8
    assert all(r["mean_steps"] <= 120 for r in two)
    assert (run / "phase2_return.png").is_file()
    gif = tmp_path / "greedy.gif"
    evaluated = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", "--checkpoint",
         str(run / "checkpoints" / "learner.pt"), "--env", "two-colors", "--episodes", "4",
         "--envs", "2", "--record", str(gif), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads(evaluated.stdout)
    greedy = result["greedy"]
    assert greedy["red_episodes"] + greedy["green_episodes"] == 4
    assert 0 < greedy["mean_steps"] <= 120
    assert gif.stat().st_size > 10_000 and gif.read_bytes()[:6] == b"GIF89a"
    wrong = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", str(run), "--env", "tmaze"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "not 'tmaze'" in wrong.stderr
