"""The supervised sequence tasks of the MemUP paper (Sorokin et al., 2022, "Explain My
Surprise: Learning Efficient Long-Term Memory by Predicting Uncertain Outcomes", NeurIPS
2022): Copy-N, Scattered Copy-N (:mod:`tasks.sequence.copy_task`) and Add-N
(:mod:`tasks.sequence.add_task`), trained by ``memup train`` without services.

:data:`SEQUENCE_TASKS` names them in one place: how a batch is generated, what the predictor
models, which held-out metric decides a run, its networks and what it trains on. A new
supervised task is one module here plus one entry there; ``memup train`` (``cli/``) asks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
    """One supervised sequence task: its generator, outcome kind, metric, networks and
    training data."""

    title: str
    """How runs and curves name it (``f"{title}-{N}"``)."""
    episodes: Callable[[int, int, np.random.Generator], list[Episode]]
    """``(n, N, rng)`` → ``n`` sequences of ``N`` steps each."""
    min_length: int
    """The smallest N a run accepts."""
    min_length_reason: str
    """What the shortest sequence holds (said when a run asks for a shorter one)."""
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
    """The memory + predictor pair with the paper's sizes (``chrono_horizon``,
    ``interaction``)."""
    fixed_training_set: bool
    """Whether a run trains on a fixed set of sequences generated once (drawn with
    replacement), or on fresh sequences every draw."""
    context: bool
    """Whether the predictor reads the local context of each target step (its own context
    LSTM over the target-step inputs), so targets carry it."""


def _copy(n: int, length: int, rng: np.random.Generator, scattered: bool = False,
          ) -> list[Episode]:
    """Copy-N in terms of the total length N = blanks + 2 x :data:`RECALL_SYMBOLS`."""
    return copy_episodes(n, length - 2 * RECALL_SYMBOLS, rng, scattered=scattered)


_COPY = SequenceTask(
    title="copy", episodes=_copy, min_length=2 * RECALL_SYMBOLS + 1,
    min_length_reason=f"{RECALL_SYMBOLS} symbols + {RECALL_SYMBOLS} recall markers + at least "
                      "one blank",
    kind="classification", metric="accuracy", minimise=False, scored_steps=RECALL_SYMBOLS,
    networks=copy_nets, fixed_training_set=True, context=True)

SEQUENCE_TASKS: dict[str, SequenceTask] = {
    "copy": _COPY,
    "scattered-copy": replace(_COPY, title="scattered-copy",
                              episodes=partial(_copy, scattered=True)),
    "add": SequenceTask(
        title="add", episodes=add_episodes, min_length=3,
        min_length_reason="two marks and the last step", kind="regression", metric="mse",
        minimise=True, scored_steps=1, networks=add_nets, fixed_training_set=False,
        context=False),
}
"""``memup train`` task name → :class:`SequenceTask`."""
