"""Tests for atomic checkpoints and for exact resume of both training protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import common.checkpoint as checkpoint_module
from common.checkpoint import (
    CheckpointError,
    discard_partial_writes,
    load_checkpoint,
    save_checkpoint,
)
from memup.detector import TargetRule
from memup.episode import Episode
from memup.training import (
    AlternatingSchedule,
    AlternatingTraining,
    MemoryTraining,
    WalkConfig,
)
from memup.update import UpdateConfig
from tasks.sequence import copy_episodes
from tasks.sequence.networks import copy_nets
from tasks.tmaze.env import random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets

torch.set_num_threads(1)


def payload(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "weights": {"a": torch.randn(3, 4, generator=gen), "b": torch.arange(5)},
        "numbers": [1, 2.5, -3],
        "name": f"run-{seed}",
        "nothing": None,
        "big": 2**100 + seed,
    }


def assert_payload_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key in want["weights"]:
        assert torch.equal(got["weights"][key], want["weights"][key])
    assert got["numbers"] == want["numbers"]
    assert got["name"] == want["name"]
    assert got["nothing"] is None
    assert got["big"] == want["big"]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "checkpoint.pt"
    want = payload(0)
    assert save_checkpoint(path, want) == path
    assert_payload_equal(load_checkpoint(path), want)
    # Overwriting replaces the content.
    newer = payload(1)
    save_checkpoint(path, newer)
    assert_payload_equal(load_checkpoint(path), newer)
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_interrupted_save_keeps_previous_checkpoint(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint.pt"
    previous = payload(2)
    save_checkpoint(path, previous)

    def crash(obj: object, f) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, payload(3))
    monkeypatch.undo()
    assert_payload_equal(load_checkpoint(path), previous)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_interrupted_first_save_leaves_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(obj: object, f) -> None:
        f.write(b"\x00" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "checkpoint.pt", payload(4))
    assert list(tmp_path.iterdir()) == []


def test_truncated_checkpoint_raises(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload(5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"definitely not a checkpoint\n" * 20])
def test_garbage_checkpoint_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="damaged") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_checkpoint_raises(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "checkpoint.pt"
    with pytest.raises(CheckpointError, match="no checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "--resume" in str(info.value)


# -- resume determinism ----------------------------------------------------------------------


def assert_same_state(a: object, b: object, where: str = "state") -> None:
    """Nested state dicts are identical: same keys, equal tensors, equal values."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and torch.equal(a, b), where
    else:
        assert a == b, where


def build_memory_training(torch_seed: int, data_seed: int) -> MemoryTraining:
    torch.manual_seed(torch_seed)
    rng = np.random.default_rng(data_seed)
    return MemoryTraining(
        tmaze_nets(hidden=32), lambda n: random_tmaze_episodes(n, 30, "LNR", rng), rng,
        TargetRule(top_k=1, current=True), WalkConfig(lanes=4, rollout=5, frequency=1),
        UpdateConfig(lr=5e-4), ema_decay=0.9, seed=0)


def build_alternating_training(torch_seed: int, data_seed: int) -> AlternatingTraining:
    torch.manual_seed(torch_seed)
    train = copy_episodes(30, 10, np.random.default_rng(123))
    rng = np.random.default_rng(data_seed)

    def source(n: int) -> list[Episode]:
        picks = rng.integers(len(train), size=n)
        return [Episode(train[i].inputs, train[i].queries, train[i].labels) for i in picks]

    schedule = AlternatingSchedule(warmup=2, memory_updates=3, predictor_updates=3,
                                   ema_decay=0.9, top_k=3, memory_frequency=2)
    return AlternatingTraining(copy_nets(hidden=32), source, rng,
                               WalkConfig(lanes=4, rollout=5, frequency=1), schedule,
                               lr=1e-3, seed=0)


def test_memory_training_resumes_exactly(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    original = build_memory_training(torch_seed=0, data_seed=1)
    for _ in range(4):
        original.step()
    save_checkpoint(path, original.state_dict())
    after = [original.step()["loss"] for _ in range(4)]

    resumed = build_memory_training(torch_seed=99, data_seed=77)
    fresh_loss = build_memory_training(torch_seed=99, data_seed=77).step()["loss"]
    resumed.load_state_dict(load_checkpoint(path))
    assert resumed.updates == 4
    again = [resumed.step()["loss"] for _ in range(4)]
    assert again == after
    assert resumed.updates == original.updates == 8
    # Not trivially equal: an un-restored run would take a different step.
    assert fresh_loss != after[0]
    assert_same_state(resumed.state_dict(), original.state_dict())


def test_alternating_training_resumes_exactly_across_phases(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    original = build_alternating_training(torch_seed=0, data_seed=1)
    for _ in range(3):
        original.step()
    save_checkpoint(path, original.state_dict())
    # Updates 3-4 are memory phase, 5-7 predictor, 8-10 memory (EMA step at 8), 11-13
    # predictor, 14-15 memory; at update 14 the memory lanes (6 rollouts per episode) load
    # and mark new episodes, which draws from the marking RNG.
    phases = [original.phase()]
    after = []
    for _ in range(13):
        stats = original.step()
        after.append((stats["loss"], stats["memory_phase"]))
        phases.append(original.phase())
    assert {m for _, m in after} == {0.0, 1.0}

    resumed = build_alternating_training(torch_seed=42, data_seed=5)
    resumed.load_state_dict(load_checkpoint(path))
    assert resumed.updates == 3
    assert resumed.phase() == phases[0]
    again = []
    for _ in range(13):
        stats = resumed.step()
        again.append((stats["loss"], stats["memory_phase"]))
    assert again == after
    assert resumed.updates == original.updates == 16
    assert original.memory_sampler.episodes_loaded > 4  # new episodes were marked
    assert_same_state(resumed.state_dict(), original.state_dict())


def test_partial_writes_a_kill_left_are_discarded(tmp_path: Path) -> None:
    path = tmp_path / "learner.pt"
    save_checkpoint(path, {"step": 1})
    for i in range(3):  # what kill -9 during torch.save leaves behind
        (tmp_path / f".learner.pt.x{i}.tmp").write_bytes(b"\0" * 100)
    (tmp_path / ".other.pt.x.tmp").write_bytes(b"")  # another file's: not ours to delete
    assert discard_partial_writes(path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.x.tmp", "learner.pt"]
    assert load_checkpoint(path)["step"] == 1
