"""Tests for the surprise detector: EMA, frozen copies, streamed scoring and episode marking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memup.detector import (
    SurpriseDetector,
    TargetRule,
    ema_update,
    frozen_copy,
    mark_episodes,
)
from memup.targets import top_k_future
from tasks.sequence import copy_episodes
from tasks.sequence.networks import copy_nets
from tasks.tmaze.env import random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets

torch.set_num_threads(1)


def small_module(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        module[1].running_mean.normal_()
        module[1].running_var.uniform_(0.5, 2.0)
        module[1].num_batches_tracked.fill_(seed + 3)
    return module


def test_ema_update_formula() -> None:
    target, source = small_module(0), small_module(1)
    before = [p.detach().clone() for p in target.parameters()]
    decay = 0.8
    ema_update(target, source, decay)
    for t, b, s in zip(target.parameters(), before, source.parameters()):
        torch.testing.assert_close(t.detach(), decay * b + (1 - decay) * s.detach())
        assert not torch.equal(t.detach(), b)
    for t, s in zip(target.buffers(), source.buffers()):
        assert torch.equal(t, s)


def test_ema_update_extremes() -> None:
    target, source = small_module(2), small_module(3)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update(target, source, 1.0)
    for t, b in zip(target.parameters(), before):
        assert torch.equal(t.detach(), b)
    ema_update(target, source, 0.0)
    for t, s in zip(target.parameters(), source.parameters()):
        assert torch.equal(t.detach(), s.detach())


def test_frozen_copy() -> None:
    module = small_module(4).train()
    clone = frozen_copy(module)
    assert not clone.training
    assert module.training  # the original is left alone
    for c, p in zip(clone.parameters(), module.parameters()):
        assert not c.requires_grad
        assert p.requires_grad
        assert torch.equal(c, p.detach())
        assert c.data_ptr() != p.data_ptr()
    with torch.no_grad():
        next(module.parameters()).add_(1.0)
    assert not torch.equal(next(clone.parameters()), next(module.parameters()).detach())
    out = clone(torch.randn(3, 4))
    assert out.grad_fn is None


def direct_scores(detector: SurpriseDetector, episodes, classification: bool):
    """Non-streamed reference: the memory over each whole episode, a prediction per step."""
    scores, contexts = [], []
    memory, predictor = detector.memory, detector.predictor
    with torch.no_grad():
        for ep in episodes:
            inputs = torch.from_numpy(ep.inputs)[None]
            queries = torch.from_numpy(ep.queries)
            out, _ = memory(inputs, memory.initial_state(1))
            ctx = None
            if classification:
                ctx, _ = predictor.context(queries[None], predictor.initial_context_state(1))
                ctx = ctx[0]
                contexts.append(ctx.numpy())
            pred = predictor(out[0], queries, ctx)
            labels = torch.from_numpy(ep.labels)
            if classification:
                scores.append(F.cross_entropy(pred, labels, reduction="none").numpy())
            else:
                scores.append(((pred - labels) ** 2).numpy())
    return scores, contexts


@pytest.mark.parametrize("chunk", [3, 7, 1000])
def test_score_tmaze_equals_direct_computation(chunk: int) -> None:
    torch.manual_seed(0)
    nets = tmaze_nets(hidden=16)
    episodes = random_tmaze_episodes(3, 9, "LNR", np.random.default_rng(0))
    episodes.append(random_tmaze_episodes(1, 4, "L", np.random.default_rng(1))[0])
    lengths = {len(e) for e in episodes}
    assert len(lengths) > 1
    detector = SurpriseDetector(nets.memory, nets.predictor, "regression", 0.9, chunk=chunk)
    scores, contexts = detector.score(episodes)
    assert contexts is None
    expected, _ = direct_scores(detector, episodes, classification=False)
    assert len(scores) == len(episodes)
    for got, want, ep in zip(scores, expected, episodes):
        assert got.shape == (len(ep),)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk", [4, 1000])
def test_score_copy_equals_direct_computation_with_context(chunk: int) -> None:
    torch.manual_seed(1)
    nets = copy_nets(hidden=16)
    rng = np.random.default_rng(2)
    episodes = copy_episodes(2, 3, rng) + copy_episodes(1, 9, rng)
    detector = SurpriseDetector(nets.memory, nets.predictor, "classification", 0.9, chunk=chunk)
    scores, contexts = detector.score(episodes, keep_context=True)
    expected, expected_ctx = direct_scores(detector, episodes, classification=True)
    assert contexts is not None and len(contexts) == len(episodes)
    for got, want, ctx, want_ctx, ep in zip(scores, expected, contexts, expected_ctx, episodes):
        assert got.shape == (len(ep),)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert ctx.shape == (len(ep), nets.predictor.context_dim)
        assert ctx.dtype == np.float32
        np.testing.assert_allclose(ctx, want_ctx, rtol=1e-4, atol=1e-5)
    no_ctx_scores, no_ctx = detector.score(episodes)
    assert no_ctx is None
    for a, b in zip(no_ctx_scores, scores):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_detector_starts_as_exact_frozen_copy_and_follows_by_ema() -> None:
    torch.manual_seed(2)
    nets = tmaze_nets(hidden=8)
    detector = SurpriseDetector(nets.memory, nets.predictor, "regression", 0.5)
    for d, p in zip(detector.memory.parameters(), nets.memory.parameters()):
        assert torch.equal(d, p.detach()) and not d.requires_grad
    before = [p.clone() for p in detector.predictor.parameters()]
    with torch.no_grad():
        for p in nets.predictor.parameters():
            p.add_(1.0)
    detector.update(nets.memory, nets.predictor)
    for d, b, p in zip(detector.predictor.parameters(), before, nets.predictor.parameters()):
        torch.testing.assert_close(d, 0.5 * b + 0.5 * p.detach())
    clone = SurpriseDetector(tmaze_nets(hidden=8).memory, tmaze_nets(hidden=8).predictor,
                             "regression", 0.5)
    clone.load_state_dict(detector.state_dict())
    for a, b in zip(clone.predictor.parameters(), detector.predictor.parameters()):
        assert torch.equal(a, b)


def test_mark_top1_and_current() -> None:
    torch.manual_seed(3)
    nets = tmaze_nets(hidden=8)
    detector = SurpriseDetector(nets.memory, nets.predictor, "regression", 0.9)
    episodes = random_tmaze_episodes(3, 12, "LNR", np.random.default_rng(3))
    rule = TargetRule(1, True)
    assert rule.width == 2
    mark_episodes(episodes, rule, np.random.default_rng(0), detector)
    surprise, _ = detector.score(episodes)
    for ep, s in zip(episodes, surprise):
        targets = ep.extras["targets"]
        assert targets.shape == (len(ep), 2) and targets.dtype == np.int64
        np.testing.assert_array_equal(targets[:, 1], np.arange(len(ep)))
        np.testing.assert_array_equal(targets[:, 0],
                                      top_k_future(s, 1, np.random.default_rng(0))[:, 0])
        assert np.all(targets[:, 0] >= np.arange(len(ep)))
        np.testing.assert_allclose(ep.extras["surprise"], s, rtol=1e-5)
        assert "context" not in ep.extras


def test_mark_top10_with_context() -> None:
    torch.manual_seed(4)
    nets = copy_nets(hidden=16)
    detector = SurpriseDetector(nets.memory, nets.predictor, "classification", 0.9)
    rng = np.random.default_rng(4)
    episodes = copy_episodes(2, 2, rng) + copy_episodes(1, 5, rng)
    rule = TargetRule(10, False, context=True)
    assert rule.width == 10
    mark_episodes(episodes, rule, np.random.default_rng(0), detector)
    for ep in episodes:
        targets = ep.extras["targets"]
        assert targets.shape == (len(ep), 10)
        assert np.all(targets >= np.arange(len(ep))[:, None])
        assert np.all(targets < len(ep))
        assert ep.extras["context"].shape == (len(ep), nets.predictor.context_dim)


def test_mark_current_only_needs_no_detector() -> None:
    episodes = random_tmaze_episodes(2, 6, "LNR", np.random.default_rng(5))
    rule = TargetRule(0, True)
    assert rule.width == 1
    mark_episodes(episodes, rule, np.random.default_rng(0))
    for ep in episodes:
        np.testing.assert_array_equal(ep.extras["targets"], np.arange(len(ep))[:, None])
        assert "surprise" not in ep.extras and "context" not in ep.extras


@pytest.mark.parametrize("rule", [TargetRule(1, True), TargetRule(3, False),
                                  TargetRule(0, True, context=True)])
def test_scoring_rule_without_detector_raises(rule: TargetRule) -> None:
    episodes = random_tmaze_episodes(1, 5, "L", np.random.default_rng(6))
    with pytest.raises(ValueError, match="detector"):
        mark_episodes(episodes, rule, np.random.default_rng(0))
    assert "targets" not in episodes[0].extras


def test_rule_select_puts_spaced_peaks_before_the_current_step() -> None:
    # Surprise peaks at 2 and 7 with shoulders; spacing 2 keeps the shoulders out of the top 2.
    surprise = np.array([0.0, 0.5, 0.9, 0.6, 0.0, 0.0, 0.7, 1.0, 0.8, 0.0], np.float32)
    rule = TargetRule(top_k=2, current=True, spacing=2)
    (targets,) = rule.select([surprise], [len(surprise)], np.random.default_rng(0))
    assert targets.shape == (10, 3)
    assert sorted(targets[0, :2]) == [2, 7]
    np.testing.assert_array_equal(targets[:, 2], np.arange(10))
    assert all(k >= t for t, row in enumerate(targets) for k in row[:2])


def test_rule_select_without_surprise_raises_for_top_k() -> None:
    with pytest.raises(ValueError, match="surprise"):
        TargetRule(top_k=1, current=True).select(None, [5], np.random.default_rng(0))
    current_only = TargetRule(top_k=0, current=True).select(None, [4], np.random.default_rng(0))
    np.testing.assert_array_equal(current_only[0][:, 0], np.arange(4))
