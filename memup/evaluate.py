"""Evaluation: same-step prediction at chosen steps of held-out episodes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from memup.episode import Episode
from memup.losses import Kind, is_correct, pointwise_loss
from memup.memory import Memory
from memup.stream import same_step_predictions


def final_steps(episodes: list[Episode]) -> list[np.ndarray]:
    """The last step of each episode (T-Maze: the junction decision)."""
    return [np.array([len(e) - 1]) for e in episodes]


def last_steps(episodes: list[Episode], n: int) -> list[np.ndarray]:
    """The last ``n`` steps of each episode (Copy: the recall positions)."""
    return [np.arange(len(e) - n, len(e)) for e in episodes]


def evaluate(memory: Memory, predictor: nn.Module, episodes: list[Episode],
             positions: list[np.ndarray], kind: Kind, batch: int = 16,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """Predicts ``y_t`` from ``m_t`` at ``positions``; returns mean loss and accuracy.

    The networks run in eval mode (no dropout) and are put back in their previous mode.
    """
    modes = memory.training, predictor.training
    memory.eval()
    predictor.eval()
    losses, hits = [], []
    try:
        for i in range(0, len(episodes), batch):
            group, where = episodes[i : i + batch], positions[i : i + batch]
            result = same_step_predictions(memory, predictor, group, where, device=device)
            for pred, ep, pos in zip(result.predictions, group, where):
                labels = torch.from_numpy(ep.labels[pos])
                losses.append(pointwise_loss(pred, labels, kind))
                hits.append(is_correct(pred, labels, kind))
    finally:
        memory.train(modes[0])
        predictor.train(modes[1])
    return {"loss": torch.cat(losses).mean().item(),
            "accuracy": torch.cat(hits).float().mean().item()}
