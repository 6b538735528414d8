"""End to end: `memup up` on benchmarks written outside the project, each named by one
config line (``task.env = "gym:<module>:<id>"``): POPGym RepeatPreviousEasy and MiniGrid
MemoryS7, each run when its package is installed (the dev extra installs both).

Short budgets: a run must pass phase I (memory) into phase II (PPO) and finish on its
budget, every role clean; learning a task takes its config's real budget.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def up(config: str, run_dir: Path, *sets: str) -> list[dict]:
    """Runs `memup up` on ``config`` with a short budget; the run's metrics records."""
    args = [arg for item in [f"run.dir={run_dir}", "memup.max_updates=30",
                             "memup.publish_every=10", "actor.envs=4",
                             "ppo.episodes_per_update=16", *sets]
            for arg in ("--set", item)]
    proc = subprocess.run([sys.executable, "-m", "cli.main", "up", "--config", config, *args,
                           "--max-minutes", "5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in run_dir.iterdir() if p.is_dir()]
    for log in (run / "logs").iterdir():
        assert "Traceback" not in log.read_text(), log.name
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def needs(package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"pip install -e \".[{package}]\" to run it")


@needs("popgym")
def test_memup_up_runs_popgym_repeat_previous_through_both_phases(tmp_path: Path) -> None:
    records = up("configs/up_popgym_repeat_previous.toml", tmp_path, "ppo.max_env_steps=20000")
    one = [r for r in records if r["phase"] == 1]
    two = [r for r in records if r["phase"] == 2]
    assert one and one[-1]["update"] == 30, one[-3:]
    assert two and two[-1]["env_steps"] >= 20000, two[-3:]
    assert all(r["mean_steps"] == 51 for r in two)  # whole POPGym episodes reach PPO
    assert all(-1.0 <= r["mean_return"] <= 1.0 for r in two)
    run = tmp_path / "popgym-repeat-previous-easy"
    evaluated = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", str(run), "--episodes", "8", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["greedy"]["mean_steps"] == 51


@needs("minigrid")
def test_memup_up_runs_minigrid_memory_end_to_end(tmp_path: Path) -> None:
    records = up("configs/up_minigrid_memory.toml", tmp_path, "memup.lanes=8",
                 "ppo.max_env_steps=15000")
    assert [r for r in records if r["phase"] == 1]
    two = [r for r in records if r["phase"] == 2]
    assert two and two[-1]["env_steps"] >= 15000, two[-3:]
    assert all(0 < r["mean_steps"] <= 245 for r in two)
