"""How the networks' weights are named on the wire.

Actors, scorers and the learner build their networks from the run's task
(:meth:`tasks.base.Task.networks`, :meth:`tasks.base.Task.policy`), so the weights one role
publishes always load into the modules another role holds. Published weights are flat
``{"<part>.<param>": tensor}`` dicts: ``detector`` = EMA ``memory`` + ``predictor`` (for
scorers), ``policy`` = ``memory`` + ``heads`` (MemUP modes) or ``lstm`` (the PPO-LSTM
baseline) for actors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

DETECTOR = "detector"
"""Weights name of the EMA memory and predictor the scorers run."""
POLICY = "policy"
"""Weights name of what actors run: memory + heads, or the PPO-LSTM."""


def detector_parts(memory: nn.Module, predictor: nn.Module) -> dict[str, nn.Module]:
    """The named parts of ``detector`` weights."""
    return {"memory": memory, "predictor": predictor}


def policy_parts(memory: nn.Module | None, policy: nn.Module) -> dict[str, nn.Module]:
    """The named parts of ``policy`` weights: the memory and the heads on it, or (no
    memory: the PPO-LSTM baseline) the policy alone."""
    return {"lstm": policy} if memory is None else {"memory": memory, "heads": policy}


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
