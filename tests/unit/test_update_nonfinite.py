"""An update whose loss is NaN or infinite takes no optimiser step (and no EMA step)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from memup.detector import SurpriseDetector, TargetRule, mark_episodes
from memup.sampler import LaneSampler
from memup.update import UpdateConfig, Updater
from tasks.tmaze.env import random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets

torch.set_num_threads(1)


def _params(*modules: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("bad", [math.nan, math.inf])  # inf inputs give a NaN loss too
def test_a_non_finite_loss_skips_the_step(bad: float) -> None:
    torch.manual_seed(0)
    nets = tmaze_nets(hidden=8)
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.5)
    rng = np.random.default_rng(0)
    sampler = LaneSampler(lambda n: random_tmaze_episodes(n, 6, "L", rng),
                          lambda eps: mark_episodes(eps, TargetRule(0, True), rng), 2, 4)
    updater = Updater(nets, UpdateConfig(lr=1e-2), 2, detector)
    batch = sampler.next_batch()
    poisoned = dataclasses.replace(batch, inputs=torch.full_like(batch.inputs, bad))
    online, ema = _params(nets.memory, nets.predictor), _params(detector.memory)
    stats = updater.step(poisoned)
    assert not math.isfinite(stats["loss"])
    assert updater.updates == 1  # counted, but nothing moved
    assert all(torch.equal(a, b) for a, b in zip(online, _params(nets.memory, nets.predictor)))
    assert all(torch.equal(a, b) for a, b in zip(ema, _params(detector.memory)))
    assert not updater.optimizer.state  # Adam never stepped
