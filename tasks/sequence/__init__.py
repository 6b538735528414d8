"""The supervised sequence tasks of the MemUP paper (Sorokin et al., 2022, "Explain My
Surprise: Learning Efficient Long-Term Memory by Predicting Uncertain Outcomes", NeurIPS
2022): Copy-N, Scattered Copy-N (:mod:`tasks.sequence.copy_task`) and Add-N
(:mod:`tasks.sequence.add_task`), trained by ``memup train`` without services.

:data:`SEQUENCE_TASKS` names them in one place: how a batch is generated, what the predictor
models and which held-out metric decides a run. A new supervised task is one module here
plus one entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from memup.episode import Episode
from memup.losses import Kind
from memup.networks import TaskNets
from tasks.sequence.add_task import add_episodes
from tasks.sequence.copy_task import (
    COPY_CLASSES,
    COPY_VOCAB,
    RECALL_SYMBOLS,
    copy_episodes,
)
from tasks.sequence.networks import add_nets, copy_nets

__all__ = [
    "COPY_CLASSES",
    "COPY_VOCAB",
    "RECALL_SYMBOLS",
    "SEQUENCE_TASKS",
    "SequenceTask",
    "add_episodes",
    "copy_episodes",
]


@dataclass(frozen=True)
class SequenceTask:
    """One supervised sequence task: its generator, outcome kind and metric."""

    title: str
    """How runs and curves name it (``f"{title}-{N}"``)."""
    episodes: Callable[[int, int, np.random.Generator], list[Episode]]
    """``(n, N, rng)`` → ``n`` sequences of ``N`` steps each."""
    min_length: int
    """The smallest N a run accepts."""
    kind: Kind
    """What the predictor models: ``"classification"`` (cross-entropy) or ``"regression"``
    (squared error)."""
    metric: str
    """The held-out metric that decides a run: ``"accuracy"`` or ``"mse"``."""
    minimise: bool
    """Whether a lower ``metric`` is better."""
    scored_steps: int
    """How many last steps of a sequence the metric is measured at."""
    networks: Callable[..., TaskNets]
    """The memory + predictor pair with the paper's sizes."""


def _copy(n: int, length: int, rng: np.random.Generator, scattered: bool = False,
          ) -> list[Episode]:
    """Copy-N in terms of the total length N = blanks + 2 x :data:`RECALL_SYMBOLS`."""
    return copy_episodes(n, length - 2 * RECALL_SYMBOLS, rng, scattered=scattered)


SEQUENCE_TASKS: dict[str, SequenceTask] = {
    "copy": SequenceTask("copy", _copy, 2 * RECALL_SYMBOLS + 1, "classification",
                         "accuracy", False, RECALL_SYMBOLS, copy_nets),
    "scattered-copy": SequenceTask("scattered-copy", partial(_copy, scattered=True),
                                   2 * RECALL_SYMBOLS + 1, "classification", "accuracy",
                                   False, RECALL_SYMBOLS, copy_nets),
    "add": SequenceTask("add", add_episodes, 3, "regression", "mse", True, 1, add_nets),
}
"""``memup train`` task name → :class:`SequenceTask`."""
