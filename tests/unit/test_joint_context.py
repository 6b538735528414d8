"""The joint Copy protocol: targets inside the slice take the live context, others the mark's."""

from __future__ import annotations

import numpy as np
import torch

from memup.batch import Batch
from memup.detector import TargetRule
from memup.episode import Episode
from memup.sampler import LaneSampler
from memup.training import MemoryTraining, WalkConfig
from memup.update import UpdateConfig, _mix_context
from tasks.sequence import copy_episodes
from tasks.sequence.networks import copy_nets

torch.set_num_threads(1)


def _fixed_targets(episodes: list[Episode]) -> None:
    for ep in episodes:
        n = len(ep)
        # Column 0: the last step (beyond the slice early on); column 1: the current step.
        ep.extras["targets"] = np.stack([np.full(n, n - 1), np.arange(n)], axis=1)
        ep.extras["context"] = np.full((n, 3), -1.0, np.float32)


def test_pair_local_marks_targets_inside_the_slice() -> None:
    episodes = copy_episodes(2, 20, np.random.default_rng(0))  # 40 steps each
    sampler = LaneSampler(lambda n: episodes[:n], _fixed_targets, lanes=2, rollout=10)
    for offset in (0, 10, 20, 30):
        batch = sampler.next_batch()
        expected = torch.where((batch.pair_target >= offset) & (batch.pair_target < offset + 10),
                               batch.pair_target - offset, torch.full_like(batch.pair_target, -1))
        assert torch.equal(batch.pair_local, expected)
    # In the last rollout every target lies inside the slice.
    assert bool((batch.pair_local >= 0).all())


def test_mix_context_takes_live_inside_and_stored_outside() -> None:
    episodes = copy_episodes(1, 20, np.random.default_rng(1))
    sampler = LaneSampler(lambda n: episodes[:n], _fixed_targets, lanes=1, rollout=10)
    batch: Batch = sampler.next_batch()
    live = torch.arange(10, dtype=torch.float32).view(1, 10, 1).expand(1, 10, 3)
    mixed = _mix_context(live, batch)
    inside = batch.pair_local >= 0
    assert bool(inside.any()) and bool((~inside).any())
    assert torch.equal(mixed[inside, 0], batch.pair_local[inside].float())
    assert bool((mixed[~inside] == -1.0).all())


def test_joint_copy_training_trains_the_context_lstm() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = copy_episodes(16, 10, np.random.default_rng(2))
    nets = copy_nets(hidden=16)
    before = [p.detach().clone() for p in nets.predictor.context_lstm.parameters()]
    training = MemoryTraining(
        nets, lambda n: [Episode(e.inputs, e.queries, e.labels)
                         for e in (train[i] for i in rng.integers(16, size=n))],
        rng, TargetRule(top_k=3, current=True, context=True), WalkConfig(4, 5, 5),
        UpdateConfig(lr=1e-2, live_context=True))
    losses = [training.step()["loss"] for _ in range(6)]
    assert all(np.isfinite(losses))
    after = list(nets.predictor.context_lstm.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
