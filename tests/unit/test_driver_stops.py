"""The training driver stops on time and on a signal, and the run resumes from where it stopped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from cli.driver import StopRule, drive
from cli.main import main
from common.checkpoint import load_checkpoint
from common.runlog import RunLog
from memup.training import MemoryTraining
from tests.unit.resume_support import assert_same_networks


class Counter:
    """A Trainable that counts its updates and can send itself a signal at one of them."""

    def __init__(self, signal_at: int = 0, pause_s: float = 0.0) -> None:
        self.updates = 0
        self.signal_at = signal_at
        self.pause_s = pause_s

    def step(self) -> dict[str, float]:
        self.updates += 1
        time.sleep(self.pause_s)
        if self.updates == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return {"loss": 1.0}

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]


def test_a_signal_saves_the_update_in_progress_without_evaluating(tmp_path: Path) -> None:
    evaluations = []
    before = signal.getsignal(signal.SIGTERM)
    record = drive(Counter(signal_at=7), lambda: evaluations.append(1) or {"accuracy": 0.0},
                   RunLog(tmp_path, {}), StopRule(max_updates=100), eval_every=50,
                   resume=False, title="t", fixed={})
    assert evaluations == [] and not record["solved"] and record["updates"] == 7
    (logged,) = RunLog(tmp_path, {}).records()  # the training averages, no evaluation
    assert logged["updates"] == 7 and logged["train_loss"] == 1.0
    assert logged["stopped_by_signal"] == signal.SIGTERM
    assert not any(key.startswith("eval_") for key in logged)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["training"] == {"updates": 7}
    assert signal.getsignal(signal.SIGTERM) is before
    resumed = Counter()
    drive(resumed, lambda: {"accuracy": 0.0}, RunLog(tmp_path, {}), StopRule(max_updates=20),
          eval_every=50, resume=True, title="t", fixed={})
    assert resumed.updates == 20


def test_the_time_limit_is_checked_every_update_not_only_at_evaluations(tmp_path: Path) -> None:
    evaluations = []
    counter = Counter(pause_s=0.01)
    drive(counter, lambda: evaluations.append(1) or {"accuracy": 0.0}, RunLog(tmp_path, {}),
          StopRule(max_updates=10_000, max_minutes=0.05 / 60), eval_every=5_000,
          resume=False, title="t", fixed={})
    assert evaluations == [1] and counter.updates < 50  # evaluated once, at the limit
    assert len(RunLog(tmp_path, {}).records()) == 1


TMAZE = ["train", "tmaze-memory", "--length", "200", "--rollout", "10", "--lanes", "4",
         "--eval-every", "1000", "--eval-episodes", "4", "--threads", "1", "--device", "cpu",
         "--lazy", "--stagger", "--skip", "20", "--seed", "3"]


def test_a_run_stopped_by_signal_resumes_bit_for_bit(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main([*TMAZE, "--max-updates", "30", "--run-dir", str(straight)]) == 0
    step = MemoryTraining.step

    def step_then_signal(self: MemoryTraining) -> dict[str, float]:
        stats = step(self)
        if self.updates == 13:
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(MemoryTraining, "step", step_then_signal)
    assert main([*TMAZE, "--max-updates", "30", "--run-dir", str(stopped)]) == 0
    monkeypatch.undo()
    assert load_checkpoint(stopped / "checkpoint.pt")["training"]["updater"]["updates"] == 13
    assert main([*TMAZE, "--max-updates", "30", "--run-dir", str(stopped), "--resume"]) == 0
    assert_same_networks(straight, stopped)
