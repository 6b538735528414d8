"""The in-memory record of one complete sequence, as every part of the core sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Episode:
    """One complete sequence of steps.

    Attributes:
        inputs: what the memory reads at each step. ``[T, D]`` float32 (vector tasks,
            e.g. T-Maze ``[obs(3), onehot(prev_action)(2), prev_reward(1)]``) or ``[T]``
            int64 tokens (Copy).
        queries: the local features of step ``k`` that the predictor sees when it is asked
            about ``y_k``. ``[T, Dq]`` float32 (T-Maze ``[obs(3), onehot(action)(2)]``) or
            ``[T]`` int64 tokens.
        labels: the outcome ``y_k`` of every step: ``[T]`` float32 (regression, e.g. reward)
            or int64 (class index).
        extras: optional per-step arrays added at load time (e.g. ``"context"``, the
            predictor's local context, ``[T, C]`` float32).
    """

    inputs: np.ndarray
    queries: np.ndarray
    labels: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if len(self.queries) != n or len(self.labels) != n:
            raise ValueError(
                f"episode arrays disagree in length: inputs {n}, queries {len(self.queries)}, "
                f"labels {len(self.labels)}"
            )
        if n == 0:
            raise ValueError("an episode needs at least one step")

    def __len__(self) -> int:
        return len(self.inputs)
