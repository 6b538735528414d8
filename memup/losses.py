"""Per-element losses: squared error for real outcomes, cross-entropy for classes."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Kind = Literal["regression", "classification"]


def pointwise_loss(prediction: torch.Tensor, labels: torch.Tensor, kind: Kind) -> torch.Tensor:
    """Loss of every element, unreduced: ``[N]``.

    Args:
        prediction: ``[N]`` values (regression) or ``[N, C]`` logits (classification).
        labels: ``[N]`` float targets or int class indices.
        kind: which loss.
    """
    if kind == "regression":
        return (prediction - labels.to(prediction.dtype)) ** 2
    return F.cross_entropy(prediction, labels.long(), reduction="none")


def is_correct(prediction: torch.Tensor, labels: torch.Tensor, kind: Kind,
               tolerance: float = 0.3) -> torch.Tensor:
    """``[N]`` bool: within ``tolerance`` (regression, the T-Maze metric) or arg-max hit."""
    if kind == "regression":
        return (prediction - labels.to(prediction.dtype)).abs() < tolerance
    return prediction.argmax(dim=-1) == labels.long()


def outcome_sign_hits(prediction: torch.Tensor, labels: torch.Tensor,
                      threshold: float = 0.5) -> tuple[int, int]:
    """Regression: among targets whose outcome is more than ``threshold`` away from zero (a
    pickup, not a plain step), how many the prediction gets on the right side of zero;
    ``(hits, n)``. The learner's batches and ``memup probe`` both count with this.

    Why apart from :func:`is_correct`: most targets of a batch can be zero outcomes, and a
    predictor that answers 0 everywhere is then mostly "within tolerance".
    """
    labels = labels.to(prediction.dtype)
    outcome = labels.abs() > threshold
    hits = ((prediction[outcome] > 0) == (labels[outcome] > 0)).sum()
    return int(hits), int(outcome.sum())
