"""Lazy episodes, streamed top-1 marks, staggered lanes: equal to the materialised versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from memup.detector import SurpriseDetector, TargetRule, mark_episodes, mark_streamed
from memup.encoding import encode_steps
from memup.episode import Episode
from memup.lazy import SuffixPeaks, TopOneTargets
from memup.sampler import LaneSampler
from memup.stream import advance
from memup.targets import top_k_future
from tasks.tmaze.env import (
    FAILURE_REWARD,
    LAZY_BLOCK,
    LENGTH_DEVIATION,
    N_ACTIONS,
    SUCCESS_REWARD,
    _block_draws,
    lazy_tmaze_episode,
    lazy_tmaze_episodes,
)
from tasks.tmaze.networks import tmaze_nets
from tests.unit.resume_support import assert_same_networks


def materialise(ep: Episode) -> Episode:
    return Episode(np.asarray(ep.inputs), np.asarray(ep.queries), np.asarray(ep.labels))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_suffix_peaks_give_top1_future_with_later_ties(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    scores = rng.integers(0, 6, size=500).astype(np.float64)  # many ties
    peaks = SuffixPeaks()
    for start in range(0, len(scores), chunk):
        peaks.push(start, scores[start:start + chunk])
    targets = TopOneTargets(peaks.steps, len(scores), current=True)
    steps = np.arange(len(scores))
    expected = top_k_future(scores, 1, rng)[:, 0]
    np.testing.assert_array_equal(targets[steps][:, 0], expected)
    np.testing.assert_array_equal(targets[steps][:, 1], steps)
    assert TopOneTargets(peaks.steps, len(scores), current=False)[steps].shape == (500, 1)


def whole_tmaze(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The episode of ``spec`` built in one piece from the same block draws."""
    seed, length, clue, noise = (int(v) for v in spec)
    n_blocks = -(-length // LAZY_BLOCK)
    draws = [_block_draws(seed, j, min(LAZY_BLOCK, length - j * LAZY_BLOCK), bool(noise))
             for j in range(n_blocks)]
    actions = np.concatenate([a for a, _ in draws])
    obs = np.zeros((length, 3), np.float32)
    obs[0, 0] = -1.0 if clue == 0 else 1.0
    obs[-1, 1] = 1.0
    if noise:
        obs[:, 2] = np.concatenate([b for _, b in draws])
    rewards = np.zeros(length, np.float32)
    rewards[-1] = SUCCESS_REWARD if actions[-1] == clue else FAILURE_REWARD
    return encode_steps(obs, actions, rewards, N_ACTIONS)


@pytest.mark.parametrize("length", [1, 5, LAZY_BLOCK, LAZY_BLOCK + 1, 3 * LAZY_BLOCK + 17])
def test_lazy_tmaze_matches_the_whole_encoding(length: int) -> None:
    spec = np.array([12345, length, length % 2, 1], np.int64)
    ep = lazy_tmaze_episode(spec)
    inputs, queries, labels = whole_tmaze(spec)
    np.testing.assert_array_equal(np.asarray(ep.inputs), inputs)
    np.testing.assert_array_equal(np.asarray(ep.queries), queries)
    np.testing.assert_array_equal(np.asarray(ep.labels), labels)
    # Slices and gathers across block boundaries, in any order, from a cold cache.
    ep = lazy_tmaze_episode(spec)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = int(rng.integers(0, length))
        b = int(rng.integers(a, length + 5))
        np.testing.assert_array_equal(ep.inputs[a:b], inputs[a:b])
    idx = rng.integers(0, length, size=30)
    np.testing.assert_array_equal(ep.queries[idx], queries[idx])
    np.testing.assert_array_equal(ep.labels[idx], labels[idx])
    assert ep.inputs[length - 1].shape == (6,)


def test_lazy_tmaze_draws_lengths_and_clues_like_the_env() -> None:
    eps = lazy_tmaze_episodes(400, 50, "LNR", np.random.default_rng(1))
    lengths = np.array([len(e) for e in eps])
    assert lengths.min() >= 50 and lengths.max() <= 50 + LENGTH_DEVIATION
    assert len(set(lengths.tolist())) > 5
    clues = np.array([e.spec[2] for e in eps])
    assert 0.4 < clues.mean() < 0.6
    first = np.array([e.inputs[0][0] for e in eps])
    np.testing.assert_array_equal(first, np.where(clues == 0, -1.0, 1.0))
    a = lazy_tmaze_episodes(3, 50, "LNR", np.random.default_rng(2))
    b = lazy_tmaze_episodes(3, 50, "LNR", np.random.default_rng(2))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x.inputs), np.asarray(y.inputs))


def test_streamed_marks_equal_the_whole_pass_marks() -> None:
    torch.manual_seed(0)
    nets = tmaze_nets(hidden=32)
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.995, chunk=16,
                                group=3)
    lazy = lazy_tmaze_episodes(5, 300, "LNR", np.random.default_rng(3))
    whole = [materialise(e) for e in lazy]
    rule = TargetRule(top_k=1, current=True)
    mark_streamed(lazy, rule, detector)
    mark_episodes(whole, rule, np.random.default_rng(0), detector)
    for a, b in zip(lazy, whole):
        assert isinstance(a.extras["targets"], TopOneTargets)
        steps = np.arange(len(b))
        np.testing.assert_array_equal(a.extras["targets"][steps], b.extras["targets"])
    with pytest.raises(ValueError):
        mark_streamed(lazy, TargetRule(top_k=2, current=True), detector)


def test_advance_from_row_zero_is_the_state_after_the_prefix() -> None:
    torch.manual_seed(0)
    memory = tmaze_nets(hidden=16).memory
    eps = [materialise(e) for e in lazy_tmaze_episodes(3, 120, "LNR", np.random.default_rng(4))]
    offsets = np.array([0, 40, 100])
    inputs = [e.inputs for e in eps]
    h, c = advance(memory, memory.initial_state(3), inputs, np.zeros(3, np.int64), offsets,
                   chunk=20)
    for b, ep in enumerate(eps):
        if offsets[b] == 0:
            assert not h[:, b].any()
            continue
        x = torch.from_numpy(ep.inputs[None, :offsets[b]])
        with torch.no_grad():
            _, (hb, cb) = memory(x, memory.initial_state(1))
        torch.testing.assert_close(h[:, b], hb[:, 0])
        torch.testing.assert_close(c[:, b], cb[:, 0])
    with pytest.raises(ValueError):
        advance(memory, memory.initial_state(3), inputs, np.zeros(3, np.int64),
                np.array([0, 30, 100]), chunk=20)


def test_staggered_lazy_sampler_round_trips_through_its_state() -> None:
    def source_from(rng: np.random.Generator):
        def source(n: int) -> list[Episode]:
            return lazy_tmaze_episodes(n, 400, "LNR", rng)  # type: ignore[return-value]
        return source

    rng = np.random.default_rng(5)
    source = source_from(rng)

    def mark(eps: list[Episode]) -> None:
        for e in eps:
            e.extras["targets"] = TopOneTargets(np.array([len(e) - 1]), len(e))

    sampler = LaneSampler(source, mark, 4, 20, rebuild=lazy_tmaze_episode)
    _, offsets = sampler.stagger()
    assert offsets[0] == 0 and (np.diff(offsets) > 0).all() and not (offsets % 20).any()
    first = sampler.next_batch()
    assert not first.fresh.any()
    state = sampler.state_dict()
    assert all(set(e) == {"lazy"} for e in state["episodes"])
    twin_rng = np.random.default_rng()
    twin_rng.bit_generator.state = rng.bit_generator.state  # as MemoryTraining restores it
    twin = LaneSampler(source_from(twin_rng), mark, 4, 20, rebuild=lazy_tmaze_episode)
    twin.load_state_dict(state)
    for _ in range(30):
        a, b = sampler.next_batch(), twin.next_batch()
        torch.testing.assert_close(a.inputs, b.inputs)
        torch.testing.assert_close(a.pair_target, b.pair_target)
    with pytest.raises(ValueError):
        LaneSampler(source, mark, 4, 20).load_state_dict(state)


TMAZE = ["train", "tmaze-memory", "--length", "300", "--rollout", "10", "--lanes", "4",
         "--eval-every", "10", "--eval-episodes", "4", "--threads", "1", "--device", "cpu",
         "--lazy", "--stagger", "--seed", "2"]


def test_lazy_staggered_run_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert main([*TMAZE, "--max-updates", "40", "--run-dir", str(straight)]) == 0
    assert main([*TMAZE, "--max-updates", "20", "--run-dir", str(halves)]) == 0
    assert main([*TMAZE, "--max-updates", "40", "--run-dir", str(halves), "--resume"]) == 0
    assert_same_networks(straight, halves)
    rows = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (halves / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval_loss"] for r in rows] == [r["eval_loss"] for r in again]
    with pytest.raises(SystemExit):  # a lazy checkpoint does not resume as a stored one
        main([*TMAZE[:-5], "--seed", "2", "--max-updates", "50", "--run-dir", str(halves),
              "--resume"])


def test_staggered_training_carries_the_prefix_states() -> None:
    from memup.training import MemoryTraining, WalkConfig
    from memup.update import UpdateConfig
    from tasks.sequence import copy_episodes
    from tasks.sequence.networks import copy_nets

    torch.manual_seed(0)
    nets = copy_nets(hidden=16)
    nets.memory.eval()
    nets.predictor.eval()  # no dropout: the pass below must be deterministic
    rng = np.random.default_rng(0)
    training = MemoryTraining(
        nets, lambda n: copy_episodes(n, 60, rng), rng,
        TargetRule(top_k=2, current=True, context=True), WalkConfig(4, 10, 5),
        UpdateConfig(live_context=True), stagger=True)
    episodes, offsets = training.sampler.stagger()
    training.sampler.episodes = [None] * 4  # let step() place them again from the same rng
    rng2 = np.random.default_rng(0)
    training.sampler.source = lambda n: copy_episodes(n, 60, rng2)
    training.sampler.ready.clear()
    updater = training.updater
    h0, _ = updater.state
    with torch.no_grad():
        ep = episodes[3]
        _, (h, _) = nets.memory(torch.from_numpy(ep.inputs[None, :offsets[3]]),
                                nets.memory.initial_state(1))
        _, (ch, _) = nets.predictor.context(torch.from_numpy(ep.queries[None, :offsets[3]]),
                                            nets.predictor.initial_context_state(1))
    assert offsets[3] > 0 and not h0.any()
    original = updater.step
    seen = {}

    def spy(batch):
        seen["h"], seen["ch"] = updater.state[0].clone(), updater.context_state[0].clone()
        return original(batch)

    updater.step = spy  # type: ignore[method-assign]
    training.step()
    torch.testing.assert_close(seen["h"][:, 3], h[:, 0])
    torch.testing.assert_close(seen["ch"][:, 3], ch[:, 0])
