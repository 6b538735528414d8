"""Tests for the lane sampler (rollouts, fresh flags, target pairs) and the one-step updater."""

from __future__ import annotations

import copy
import math
from itertools import cycle

import numpy as np
import pytest
import torch

from memup.detector import SurpriseDetector, TargetRule, mark_episodes
from memup.episode import Episode
from memup.memory import mask_state
from memup.sampler import LaneSampler
from memup.targets import prediction_steps
from memup.update import UpdateConfig, Updater
from tasks.tmaze.env import random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets

torch.set_num_threads(1)


class CountingSource:
    """Episodes whose every array encodes (episode id, step), with lengths from a cycle."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths
        self.created: list[Episode] = []
        self.calls: list[int] = []

    def __call__(self, n: int) -> list[Episode]:
        self.calls.append(n)
        out = []
        for _ in range(n):
            eid = len(self.created)
            length = self.lengths[eid % len(self.lengths)]
            steps = np.arange(length, dtype=np.float32)
            inputs = np.stack([np.full(length, eid, np.float32), steps], axis=1)
            queries = np.stack([np.full(length, eid, np.float32), steps, steps * 2], axis=1)
            labels = (eid * 1000 + steps).astype(np.float32)
            ep = Episode(inputs, queries, labels)
            self.created.append(ep)
            out.append(ep)
        return out


class RandomMarker:
    """Marks episodes with random future targets (width 2) and a context; counts calls."""

    def __init__(self, seed: int = 0, width: int = 2) -> None:
        self.rng = np.random.default_rng(seed)
        self.width = width
        self.groups: list[int] = []

    def __call__(self, episodes: list[Episode]) -> None:
        self.groups.append(len(episodes))
        for ep in episodes:
            n = len(ep)
            t = np.arange(n)[:, None]
            offsets = self.rng.integers(0, 1 << 20, size=(n, self.width))
            ep.extras["targets"] = (t + offsets % (n - t)).astype(np.int64)
            ep.extras["context"] = self.rng.normal(size=(n, 3)).astype(np.float32)


def test_lanes_walk_episodes_rollout_by_rollout() -> None:
    source, marker = CountingSource([7, 3, 12, 5, 1, 4]), RandomMarker()
    lanes, rollout, freq = 3, 4, 2
    sampler = LaneSampler(source, marker, lanes, rollout, frequency=freq)
    ref_eps: list[int | None] = [None] * lanes
    ref_off = [0] * lanes
    next_id = 0
    for _ in range(25):
        batch = sampler.next_batch()
        assert batch.inputs.shape == (lanes, rollout, 2)
        assert batch.queries.shape == (lanes, rollout, 3)
        expected_fresh = []
        for b in range(lanes):
            eid = ref_eps[b]
            if eid is None or ref_off[b] >= len(source.created[eid]):
                ref_eps[b], ref_off[b] = next_id, 0
                next_id += 1
                expected_fresh.append(True)
            else:
                expected_fresh.append(False)
        assert batch.fresh.tolist() == expected_fresh
        total = 0
        for b in range(lanes):
            ep, off = source.created[ref_eps[b]], ref_off[b]
            n = min(rollout, len(ep) - off)
            total += n
            np.testing.assert_array_equal(batch.inputs[b, :n].numpy(), ep.inputs[off : off + n])
            np.testing.assert_array_equal(batch.queries[b, :n].numpy(),
                                          ep.queries[off : off + n])
            # A shorter final rollout is zero-padded.
            assert not batch.inputs[b, n:].any() and not batch.queries[b, n:].any()
            pred = prediction_steps(off, off + n, freq)
            rows = ep.extras["targets"][pred]
            mine = batch.pair_lane == b
            np.testing.assert_array_equal(batch.pair_target[mine].numpy(), rows.reshape(-1))
            np.testing.assert_array_equal(batch.pair_step[mine].numpy(),
                                          np.repeat(pred - off, rows.shape[1]))
            targets = rows.reshape(-1)
            np.testing.assert_array_equal(batch.pair_labels[mine].numpy(), ep.labels[targets])
            np.testing.assert_array_equal(batch.pair_queries[mine].numpy(),
                                          ep.queries[targets])
            assert batch.pair_context is not None
            np.testing.assert_array_equal(batch.pair_context[mine].numpy(),
                                          ep.extras["context"][targets])
            ref_off[b] = off + n
            assert sampler.offsets[b] == ref_off[b]
        assert batch.steps == total
        n_pairs = len(batch.pair_lane)
        assert len(batch.pair_step) == len(batch.pair_target) == n_pairs
        assert len(batch.pair_labels) == len(batch.pair_queries) == n_pairs
    assert sampler.episodes_loaded == next_id


def test_labels_and_steps_are_consistent_with_the_encoding() -> None:
    """Labels encode (episode id, step): the target step is always at or after the step."""
    source = CountingSource([9, 6])
    sampler = LaneSampler(source, RandomMarker(1), 2, 5, frequency=1)
    for _ in range(8):
        batch = sampler.next_batch()
        eid = batch.pair_queries[:, 0].long()
        target_step = batch.pair_labels.long() - eid * 1000
        assert torch.equal(target_step, batch.pair_target)
        lane_eid = batch.inputs[batch.pair_lane, batch.pair_step, 0].long()
        lane_step = batch.inputs[batch.pair_lane, batch.pair_step, 1].long()
        assert torch.equal(lane_eid, eid)
        assert bool((batch.pair_target >= lane_step).all())


def test_no_context_when_episodes_carry_none() -> None:
    source = CountingSource([5])

    def mark(episodes: list[Episode]) -> None:
        for ep in episodes:
            ep.extras["targets"] = np.arange(len(ep))[:, None]

    batch = LaneSampler(source, mark, 2, 3).next_batch()
    assert batch.pair_context is None
    assert batch.pair_target.tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("load_batch", [None, 5])
def test_episodes_are_marked_in_groups(load_batch: int | None) -> None:
    source, marker = CountingSource([3, 5, 2]), RandomMarker()
    lanes = 3
    sampler = LaneSampler(source, marker, lanes, 2, load_batch=load_batch)
    group = load_batch or lanes
    sampler.next_batch()
    assert marker.groups == [group] and source.calls == [group]
    for _ in range(20):
        sampler.next_batch()
    assert all(g == group for g in marker.groups)
    assert source.calls == marker.groups
    assert len(marker.groups) == math.ceil(sampler.episodes_loaded / group)
    assert sampler.episodes_loaded > group


@pytest.mark.parametrize("frequency", [0, -1, 6])
def test_invalid_frequency_raises(frequency: int) -> None:
    with pytest.raises(ValueError, match="frequency"):
        LaneSampler(CountingSource([4]), RandomMarker(), 2, 5, frequency=frequency)


def test_sampler_state_round_trip() -> None:
    source = CountingSource([6, 4, 9])
    a = LaneSampler(source, RandomMarker(2), 2, 3)
    for _ in range(3):
        a.next_batch()
    # The source and marker RNGs are not the sampler's state: hand b copies of a's.
    b = LaneSampler(copy.deepcopy(source), copy.deepcopy(a.mark), 2, 3)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        x, y = a.next_batch(), b.next_batch()
        for name in ("inputs", "fresh", "pair_lane", "pair_step", "pair_target",
                     "pair_labels", "pair_queries"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
    assert b.episodes_loaded == a.episodes_loaded


# -- Updater -------------------------------------------------------------------------------


def tmaze_sampler(lengths: list[int], lanes: int, rollout: int, seed: int = 0) -> LaneSampler:
    rng = np.random.default_rng(seed)
    it = cycle(lengths)

    def source(n: int) -> list[Episode]:
        return [random_tmaze_episodes(1, next(it), "L", rng)[0] for _ in range(n)]

    return LaneSampler(source, lambda eps: mark_episodes(eps, TargetRule(0, True), rng),
                       lanes, rollout)


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p.detach(), b) for p, b in zip(module.parameters(), before))


@pytest.mark.parametrize(("train_memory", "train_predictor"),
                         [(True, True), (False, True), (True, False)])
def test_step_trains_only_the_chosen_networks(train_memory: bool, train_predictor: bool) -> None:
    torch.manual_seed(0)
    nets = tmaze_nets(hidden=8)
    sampler = tmaze_sampler([6, 9], 2, 4)
    config = UpdateConfig(lr=1e-2, train_memory=train_memory, train_predictor=train_predictor)
    updater = Updater(nets, config, 2)
    mem0, pred0 = snapshot(nets.memory), snapshot(nets.predictor)
    for _ in range(2):
        batch = sampler.next_batch()
        stats = updater.step(batch)
        assert stats["pairs"] == len(batch.pair_lane)
        assert stats["steps"] == batch.steps
        assert math.isfinite(stats["loss"]) and 0.0 <= stats["accuracy"] <= 1.0
        assert "saved_bytes" not in stats
    assert changed(nets.memory, mem0) == train_memory
    assert changed(nets.predictor, pred0) == train_predictor
    assert updater.updates == 2


@pytest.mark.parametrize("ema", [True, False])
def test_detector_follows_only_with_ema(ema: bool) -> None:
    torch.manual_seed(1)
    nets = tmaze_nets(hidden=8)
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.5)
    before = snapshot(detector.memory)
    updater = Updater(nets, UpdateConfig(lr=1e-2, ema=ema), 2, detector)
    updater.step(tmaze_sampler([5], 2, 5).next_batch())
    assert changed(detector.memory, before) == ema
    if ema:
        # One EMA step at decay 0.5 lands halfway between the old copy and the new weights.
        for d, b, p in zip(detector.memory.parameters(), before, nets.memory.parameters()):
            torch.testing.assert_close(d, 0.5 * b + 0.5 * p.detach())


def test_carried_state_is_detached_and_zeroed_for_fresh_lanes() -> None:
    torch.manual_seed(2)
    nets = tmaze_nets(hidden=8)
    # Lane 0 walks 4-step episodes, lane 1 an 8-step one: at the 2nd batch only lane 0 is fresh.
    sampler = tmaze_sampler([4, 8], 2, 4)
    updater = Updater(nets, UpdateConfig(lr=1e-3), 2)
    first = sampler.next_batch()
    assert first.fresh.tolist() == [True, True]
    updater.step(first)
    h, c = updater.state
    assert not h.requires_grad and not c.requires_grad
    assert h.grad_fn is None and c.grad_fn is None
    assert h.abs().sum() > 0
    second = sampler.next_batch()
    assert second.fresh.tolist() == [True, False]
    with torch.no_grad():
        _, expected = nets.memory(second.inputs, mask_state((h, c), ~second.fresh))
        _, unmasked = nets.memory(second.inputs, (h, c))
    updater.step(second)
    for got, want, wrong in zip(updater.state, expected, unmasked):
        torch.testing.assert_close(got, want)
        # Lane 0 would differ had its state been carried over; lane 1 keeps its state.
        assert not torch.allclose(want[:, 0], wrong[:, 0])
        torch.testing.assert_close(want[:, 1], wrong[:, 1])


def saved_bytes(length: int, rollout: int) -> float:
    torch.manual_seed(3)
    nets = tmaze_nets(hidden=16)
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.9)
    rng = np.random.default_rng(0)
    episode = random_tmaze_episodes(1, length, "L", rng)[0]
    sampler = LaneSampler(
        lambda n: [episode],
        lambda eps: mark_episodes(eps, TargetRule(1, True), rng, detector), 1, rollout)
    updater = Updater(nets, UpdateConfig(measure_saved=True), 1, detector)
    stats = updater.step(sampler.next_batch())
    assert stats["saved_parameter_bytes"] > 0
    return stats["saved_bytes"]


def test_saved_bytes_do_not_grow_with_episode_length_but_grow_with_rollout() -> None:
    short, long = saved_bytes(200, 10), saved_bytes(2000, 10)
    assert short > 0 and long > 0
    assert abs(long - short) <= 0.1 * short
    assert saved_bytes(200, 40) > 2 * saved_bytes(200, 5)
