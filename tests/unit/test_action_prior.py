"""``ppo.action_prior``: every policy kind starts at the given action distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from tasks.registry import task_for


def policy_model(config):  # type: ignore[no-untyped-def]
    return task_for(config).policy(config)

DATA_WEIGHTS = "1,1,4,0.25,2,0.25,2,0.25"
SMALL = ["task.env=two-colors", "memup.hidden=16", "ppo.hidden=32"]


def _initial_probabilities(overrides: list[str]) -> torch.Tensor:
    config = load_config(overrides=[*SMALL, *overrides])
    spec = task_for(config)
    policy = policy_model(config)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 5, *spec.spec.obs_shape), dtype=np.uint8)
    records = torch.from_numpy(spec.step_inputs(frames.reshape(10, *spec.spec.obs_shape),
                                                np.full(10, 2), np.zeros(10, np.float32)))
    with torch.no_grad():
        if config.ppo.mode == "lstm":
            logits, _ = policy.forward_sequence(records.view(2, 5, -1))
        elif config.ppo.frame_features:
            logits, _ = policy(torch.randn(10, 16), records)
        else:
            logits, _ = policy(torch.randn(10, 16))
    return torch.softmax(logits, dim=-1).reshape(-1, spec.spec.n_actions)


@pytest.mark.parametrize("mode", [["ppo.mode=frozen"], ["ppo.mode=lstm"],
                                  ["ppo.mode=frozen", "ppo.frame_features=true"]])
def test_the_policy_starts_at_the_prior(mode: list[str]) -> None:
    weights = torch.tensor([1, 1, 4, 0.25, 2, 0.25, 2, 0.25])
    start = _initial_probabilities([*mode, f"ppo.action_prior={DATA_WEIGHTS}"])
    assert torch.allclose(start, (weights / weights.sum()).expand_as(start), atol=0.02)
    uniform = _initial_probabilities(mode)
    assert torch.allclose(uniform, torch.full_like(uniform, 1 / 8), atol=0.02)


def test_a_prior_of_another_length_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"ppo\.action_prior.*need 8"):
        policy_model(load_config(overrides=[*SMALL, "ppo.action_prior=1,1,4"]))


@pytest.mark.parametrize("text", ["1,x", "1,-1", "0,0"])
def test_a_malformed_prior_is_refused_at_load(text: str) -> None:
    with pytest.raises(ConfigError, match=r"ppo\.action_prior .*comma-separated"):
        load_config(overrides=[*SMALL, f"ppo.action_prior={text}"])
