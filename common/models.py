"""The networks of a run, built from its config, and how their weights are named on the wire.

Actors, scorers and the learner build their networks here so that the weights one role
publishes always load into the modules another role holds. Published weights are flat
``{"<part>.<param>": tensor}`` dicts: ``detector`` = EMA ``memory`` + ``predictor`` (for
scorers), ``policy`` = ``memory`` + ``heads`` (MemUP modes) or ``lstm`` (the PPO-LSTM
baseline) for actors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from common.config import ClusterConfig, ConfigError, action_weights
from common.tasks import task_spec
from memup.frames import FrameEncoder
from memup.networks import TaskNets, tmaze_nets, two_colors_nets, two_colors_predictor
from memup.policy import FrameHeads, LstmPolicy, PolicyHeads

DETECTOR = "detector"
"""Weights name of the EMA memory and predictor the scorers run."""
POLICY = "policy"
"""Weights name of what actors run: memory + heads, or the PPO-LSTM."""


def memory_nets(config: ClusterConfig) -> TaskNets:
    """The MemUP memory and predictor of the run's task."""
    m = config.memup
    horizon = config.task.length if m.chrono == -1 else (m.chrono or None)
    spec = task_spec(config)
    if spec.frames:
        return two_colors_nets(m.hidden, spec.obs_shape, spec.n_actions, m.cnn,  # type: ignore[arg-type]
                               chrono_horizon=horizon, interaction=m.interaction,
                               reconstruct=m.reconstruction > 0, query_shift=m.query_shift,
                               predictor_dropout=m.predictor_dropout)
    return tmaze_nets(m.hidden, chrono_horizon=horizon, interaction=m.interaction)


def policy_model(config: ClusterConfig) -> nn.Module:
    """Heads on the memory output (frozen / joint) or the PPO-LSTM baseline (lstm), starting
    at ``ppo.action_prior`` when it is set.

    Raises:
        ConfigError: ``ppo.action_prior`` has not one weight per action of the task.
    """
    policy = _policy_network(config)
    prior = action_weights(config.ppo.action_prior, "ppo.action_prior")
    if prior:
        heads = policy if isinstance(policy, PolicyHeads) else policy.heads
        try:
            heads.set_action_prior(prior)
        except ValueError as error:
            raise ConfigError(f"ppo.action_prior: {error}") from None
    return policy


def _policy_network(config: ClusterConfig) -> nn.Module:
    """The policy network of ``config.ppo.mode``, at its default initialisation."""
    spec = task_spec(config)
    if config.ppo.mode == "lstm":
        if spec.frames:  # the baseline gets a CNN of the memory's shape, trained by PPO
            encoder = FrameEncoder(spec.obs_shape, spec.n_actions, "input",  # type: ignore[arg-type]
                                   config.memup.cnn)
            return LstmPolicy(encoder.out_dim, spec.n_actions, tbptt=config.ppo.tbptt,
                              encoder=encoder)
        return LstmPolicy(spec.input_dim, spec.n_actions, tbptt=config.ppo.tbptt)
    if spec.frames and config.ppo.frame_features:
        # The outcome model has the predictor's shape; the learner loads phase I's.
        m = config.memup
        outcome_model = two_colors_predictor(
            m.hidden, spec.obs_shape, spec.n_actions, m.cnn,  # type: ignore[arg-type]
            m.interaction, m.reconstruction > 0) if config.ppo.outcome_features else None
        return FrameHeads(config.memup.hidden, spec.obs_shape, spec.n_actions,  # type: ignore[arg-type]
                          hidden=config.ppo.hidden, cnn=config.memup.cnn,
                          interaction=config.ppo.interaction,
                          outcome_model=outcome_model)  # type: ignore[arg-type]
    return PolicyHeads(config.memup.hidden, spec.n_actions, hidden=config.ppo.hidden)


def flatten(parts: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``{"part.param": tensor}`` of several modules, detached, on the CPU."""
    return {f"{name}.{key}": value.detach().cpu()
            for name, module in parts.items() for key, value in module.state_dict().items()}


def load_flat(parts: Mapping[str, nn.Module], tensors: Mapping[str, torch.Tensor]) -> None:
    """Loads :func:`flatten` output into the same-named modules (strict).

    Raises:
        ValueError: a part is missing or the tensors do not fit the modules.
    """
    for name, module in parts.items():
        lead = f"{name}."
        own = {k[len(lead):]: v for k, v in tensors.items() if k.startswith(lead)}
        if not own:
            raise ValueError(f"published weights hold no {name!r} part; got "
                             f"{sorted({k.split('.')[0] for k in tensors})}")
        try:
            module.load_state_dict(own)
        except RuntimeError as exc:
            raise ValueError(f"published {name!r} weights do not fit this config: "
                             f"{str(exc)[:300]}") from exc
