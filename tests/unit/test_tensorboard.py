"""``run.tensorboard`` / ``--tensorboard``: the metrics.jsonl scalars as TensorBoard events."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from common.config import load_config
from common.runlog import TENSORBOARD_HINT, RunLog, read_records, scalars, wants_tensorboard

# Records shaped as the learner logs them (phase I, phase II) and as `memup train` does.
PHASE_ONE = {"phase": 1, "update": 50, "loss": 0.25, "memory_accuracy": 0.5, "scored": 40}
PHASE_TWO = {"phase": 2, "ppo_update": 3, "env_steps": 12_000, "memup_update": 400,
             "success": 0.75, "policy_loss": -0.125, "updates": 16.0}  # minibatches
TRAIN = {"updates": 250, "wall_seconds": 1.5, "train_loss": 0.5, "eval_accuracy": 1.0,
         "solved": True}


def read_events(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series under ``log_dir`` as TensorBoard reads it back."""
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def test_cluster_records_read_back_with_their_values_and_steps(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    config = load_config(overrides=["run.tensorboard=true"])
    log = RunLog(tmp_path, config.redacted())
    log.log(PHASE_ONE)
    log.log({**PHASE_ONE, "update": 100, "memory_accuracy": 0.875})
    log.log(PHASE_TWO)
    log.close()
    series = read_events(tmp_path / "tensorboard")
    assert series["phase1/memory_accuracy"] == [(50, 0.5), (100, 0.875)]
    assert series["phase1/scored"] == [(50, 40.0), (100, 40.0)]
    assert series["phase2/success"] == [(3, 0.75)]
    assert series["phase2/policy_loss"] == [(3, -0.125)]
    assert series["phase2/env_steps"] == [(3, 12_000.0)]
    assert series["phase2/updates"] == [(3, 16.0)]  # the PPO update is the step
    assert series["by_env_steps/phase2/success"] == [(12_000, 0.75)]
    assert "by_env_steps/phase2/env_steps" not in series
    assert len(read_records(tmp_path)) == 3  # metrics.jsonl as before


def test_every_numeric_value_of_a_record_is_a_scalar() -> None:
    record = {"time": 1.0, **TRAIN, "note": "text", "schedule": {"warmup": 10}}
    tags = {tag for tag, _, _ in scalars(record, step=250)}
    assert tags == set(TRAIN)
    assert all(step == 250 for _, _, step in scalars(record, step=250))


def test_memup_train_flag_writes_events(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from cli.main import main

    run_dir = tmp_path / "run"
    assert main(["train", "tmaze-memory", "--length", "10", "--rollout", "5", "--lanes", "4",
                 "--max-updates", "4", "--eval-every", "2", "--eval-episodes", "4",
                 "--threads", "1", "--device", "cpu", "--tensorboard",
                 "--run-dir", str(run_dir)]) == 0
    series = read_events(run_dir / "tensorboard")
    records = read_records(run_dir)
    assert [step for step, _ in series["eval_accuracy"]] == [2, 4]
    assert series["train_loss"] == [(r["updates"], pytest.approx(r["train_loss"]))
                                    for r in records]


def test_off_by_default_and_no_folder(tmp_path: Path) -> None:
    config = load_config()
    assert config.run.tensorboard is False
    assert not wants_tensorboard(config.redacted())
    log = RunLog(tmp_path, config.redacted())
    log.log(PHASE_ONE)
    log.close()
    assert not (tmp_path / "tensorboard").exists()


def test_a_log_that_only_keeps_the_config_makes_no_event_file(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    RunLog(tmp_path, {"tensorboard": True})  # as `memup up` writes config.json
    assert not (tmp_path / "tensorboard").exists()


def test_missing_package_says_how_to_install_and_the_run_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="common.runlog"):
        log = RunLog(tmp_path, {"tensorboard": True})
    log.log(TRAIN)
    assert [r.getMessage() for r in caplog.records] == [TENSORBOARD_HINT]
    assert 'pip install -e ".[tensorboard]"' in TENSORBOARD_HINT
    assert read_records(tmp_path)[0]["updates"] == 250
    assert not (tmp_path / "tensorboard").exists()
