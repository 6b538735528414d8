"""End to end on ViZDoom Two-Colors: frames through the whole cluster, then eval and reuse.

Deliberately small runs (short episodes, few lanes, tiny budgets): real ViZDoom actors
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

import pytest
import torch

from common.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]

SMALL = ["task.length=120", "actor.replicas=1", "actor.envs=4", "memup.lanes=4",
         "memup.rollout=8", "memup.max_updates=30", "memup.min_replay=4",
         "memup.warmup_episodes=8", "memup.publish_every=10", "ppo.episodes_per_update=8",
         "ppo.max_env_steps=12000", "scorer.replay_episodes=16"]


def up(run_dir: Path, name: str, *extra: str) -> Path:
    """Runs `memup up` on the small Two-Colors config; returns the run's directory."""
    sets = [arg for item in [*SMALL, f"run.dir={run_dir}", f"run.name={name}", *extra]
            for arg in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "up", "--config", "configs/up_two_colors.toml",
         *sets, "--max-minutes", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished after" in proc.stderr
    return run_dir / name


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return up(tmp_path_factory.mktemp("two-colors"), "tc-e2e")


def test_two_colors_cluster_trains_memory_then_policy(trained: Path) -> None:
    one = [r for r in records(trained) if r["phase"] == 1]
    two = [r for r in records(trained) if r["phase"] == 2]
    assert one and one[-1]["update"] == 30 and one[-1]["scored"] > 0
    assert two and two[-1]["env_steps"] >= 12000 and two[-1]["episodes"] == 8
    assert all(r["mean_steps"] <= 120 for r in two)
    assert (trained / "phase2_return.png").is_file()


def test_eval_reports_per_colour_results_and_records_a_gif(trained: Path,
                                                          tmp_path: Path) -> None:
    gif = tmp_path / "greedy.gif"
    evaluated = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", "--checkpoint",
         str(trained / "checkpoints" / "learner.pt"), "--env", "two-colors", "--episodes",
         "4", "--envs", "2", "--record", str(gif), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    greedy = json.loads(evaluated.stdout)["greedy"]
    assert greedy["red_episodes"] + greedy["green_episodes"] == 4
    assert 0 < greedy["mean_steps"] <= 120
    assert gif.stat().st_size > 10_000 and gif.read_bytes()[:6] == b"GIF89a"
    wrong = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", str(trained), "--env", "tmaze"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "not 'tmaze'" in wrong.stderr


def test_a_new_run_starts_ppo_on_a_trained_memory(trained: Path, tmp_path: Path) -> None:
    run = up(tmp_path, "tc-reuse", f"learner.init_memory={trained}",
             "ppo.init_encoder=predictor", "ppo.interaction=true", "ppo.outcome_features=true")
    assert not [r for r in records(run) if r["phase"] == 1]  # phase I skipped
    two = [r for r in records(run) if r["phase"] == 2]
    assert two and all("outcome_gain" in r and r["good_pickups"] >= 0 for r in two)
    assert sum(r["good_pickups"] + r["bad_pickups"] for r in two) > 0
    log = (run / "logs" / "learner.log").read_text()
    assert "starting from the memory of" in log and "(30 MemUP updates there)" in log
    assert "policy frame CNN starts from phase I's predictor CNN" in log
    # The heads' outcome model is the source run's EMA predictor, unchanged by PPO.
    source = load_checkpoint(trained / "checkpoints" / "learner.pt")
    reused = load_checkpoint(run / "checkpoints" / "learner.pt")
    for key, value in source["detector"]["predictor"].items():
        assert torch.equal(reused["policy"][f"outcome_model.{key}"], value), key


def test_a_new_run_can_train_a_trained_memory_further(trained: Path, tmp_path: Path) -> None:
    # A second phase I stage: the adopted memory trains further before any PPO, with the
    # phase I recipe's regularised predictor.
    run = up(tmp_path, "tc-more", f"learner.init_memory={trained}",
             "learner.init_memory_phase=1", "memup.max_updates=10", "ppo.max_env_steps=1",
             "memup.query_shift=4", "memup.predictor_dropout=0.2")
    one = [r for r in records(run) if r["phase"] == 1]
    assert one and one[-1]["update"] == 10  # counters start fresh
    assert all(0 <= r["outcome_pairs"] <= r["pairs"] for r in one)
    assert all(0 <= r["outcome_sign_accuracy"] <= 1 for r in one if r["outcome_pairs"])
    log = (run / "logs" / "learner.log").read_text()
    assert "(30 MemUP updates there)" in log and "phase I: training the memory" in log
    source = load_checkpoint(trained / "checkpoints" / "learner.pt")
    further = load_checkpoint(run / "checkpoints" / "learner.pt")
    changed = [not torch.equal(further["memory"][key], value)
               for key, value in source["memory"].items()]
    assert any(changed)  # trained from the adopted weights, not left as they were


def test_ppo_lstm_baseline_runs_on_frames(tmp_path: Path) -> None:
    run = up(tmp_path, "tc-lstm", "ppo.mode=lstm", "ppo.tbptt=16")
    two = [r for r in records(run) if r["phase"] == 2]
    assert two and two[-1]["env_steps"] >= 12000
    assert not [r for r in records(run) if r["phase"] == 1]
