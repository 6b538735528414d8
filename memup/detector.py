"""The surprise detector: EMA copies of memory + predictor, and the marks it produces.

The detector runs its memory over a whole episode without gradient, predicts every step's
own outcome, and takes the per-step error (squared error or cross-entropy of the true
label) as that step's surprise. Marking an episode turns surprise into target lists.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from memup.episode import Episode
from memup.lazy import SuffixPeaks, TopOneTargets
from memup.losses import Kind, pointwise_loss
from memup.memory import Memory
from memup.stream import every_step_chunks, same_step_predictions
from memup.targets import compose, current_step, top_k_future_batch


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """``target ← decay · target + (1 − decay) · source`` for parameters; buffers copied."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.mul_(decay).add_(s.detach().to(t.device), alpha=1.0 - decay)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)


def frozen_copy(module: nn.Module) -> nn.Module:
    """An exact copy in eval mode with gradients off."""
    clone = copy.deepcopy(module).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


class SurpriseDetector:
    """EMA copies of the memory and the predictor, used to score episodes.

    Args:
        memory: the online memory (copied exactly at start).
        predictor: the online predictor (copied exactly at start).
        kind: regression (squared error) or classification (cross-entropy).
        decay: EMA decay applied by :meth:`update`.
        chunk: streaming chunk length of the scoring pass.
        group: episodes scored side by side; larger groups are no faster on CPU but their
            transient memory grows with the group (measured: +156 MB for 64 T-Maze
            episodes at once, +41 MB for groups of 16).
        device: where the scoring pass runs.
    """

    def __init__(self, memory: Memory, predictor: nn.Module, kind: Kind, decay: float,
                 chunk: int = 64, group: int = 16,
                 device: torch.device | str = "cpu") -> None:
        self.memory = frozen_copy(memory).to(device)
        self.predictor = frozen_copy(predictor).to(device)
        self.kind = kind
        self.decay = decay
        self.chunk = chunk
        self.group = group
        self.device = device

    def update(self, memory: Memory, predictor: nn.Module) -> None:
        """One EMA step toward the online networks."""
        ema_update(self.memory, memory, self.decay)
        ema_update(self.predictor, predictor, self.decay)

    def score(self, episodes: list[Episode], keep_context: bool = False
              ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Per-step surprise of each episode (and the EMA context when asked)."""
        surprise: list[np.ndarray] = []
        contexts: list[np.ndarray] | None = [] if keep_context else None
        for i in range(0, len(episodes), self.group):
            group = episodes[i : i + self.group]
            result = same_step_predictions(self.memory, self.predictor, group,
                                           chunk=self.chunk, keep_context=keep_context,
                                           device=self.device)
            surprise += [pointwise_loss(pred, torch.from_numpy(ep.labels), self.kind).numpy()
                         for pred, ep in zip(result.predictions, group)]
            if contexts is not None:
                contexts += result.contexts or []
        return surprise, contexts if contexts else None

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "predictor": self.predictor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.predictor.load_state_dict(state["predictor"])


@dataclass(frozen=True)
class TargetRule:
    """How a mark turns surprise into targets.

    Attributes:
        top_k: K of the time-dependent top-K over k ≥ t (0 for none).
        current: add the current step as a target.
        context: store the detector's predictor context on the episode (Copy memory phase).
        spacing: top-K targets are peaks of their neighbourhood (``targets.spread_peaks``).
    """

    top_k: int = 1
    current: bool = True
    context: bool = False
    spacing: int = 1

    @property
    def width(self) -> int:
        return self.top_k + int(self.current)

    def select(self, surprise: list[np.ndarray] | None, lengths: list[int],
               rng: np.random.Generator) -> list[np.ndarray]:
        """Each episode's targets ``[T, width]``: its top-K surprising future steps, then
        the current step. ``surprise`` may be None only for a current-step-only rule."""
        if self.top_k > 0 and surprise is None:
            raise ValueError("a top-K rule needs surprise scores")
        top = (top_k_future_batch(surprise, self.top_k, rng, self.spacing)
               if self.top_k > 0 else None)
        return [compose(*([top[i]] if top is not None else []),
                        *([current_step(length)] if self.current else []))
                for i, length in enumerate(lengths)]


def mark_episodes(episodes: list[Episode], rule: TargetRule, rng: np.random.Generator,
                  detector: SurpriseDetector | None = None) -> None:
    """Scores episodes and stores ``extras["targets"]`` ``[T, width]`` (and context) on each.

    Current-step-only rules need no detector; everything else scores with it.
    """
    needs_scores = rule.top_k > 0 or rule.context
    if needs_scores and detector is None:
        raise ValueError("a top-K or context rule needs a detector")
    surprise, contexts = (detector.score(episodes, keep_context=rule.context)
                          if needs_scores else (None, None))
    targets = rule.select(surprise, [len(ep) for ep in episodes], rng)
    for i, ep in enumerate(episodes):
        if rule.top_k > 0:
            ep.extras["surprise"] = surprise[i].astype(np.float32)
        ep.extras["targets"] = targets[i]
        if rule.context and contexts is not None:
            ep.extras["context"] = contexts[i]


def mark_streamed(episodes: list[Episode], rule: TargetRule, detector: SurpriseDetector
                  ) -> None:
    """:func:`mark_episodes` for a top-1 (+ current step) rule in memory constant in T.

    The detector's pass is streamed chunk by chunk and each chunk's surprise is folded into
    the episode's suffix peaks at once, so neither the surprise nor the ``[T, K]`` target
    array is ever held: ``extras["targets"]`` becomes a :class:`TopOneTargets`. The targets
    equal those :func:`mark_episodes` gives (top-1 needs no random padding).
    """
    if rule.top_k != 1 or rule.context or rule.spacing != 1:
        raise ValueError("streamed marks support the top-1 (+ current step) rule only")
    for i in range(0, len(episodes), detector.group):
        group = episodes[i : i + detector.group]
        lengths = np.array([len(e) for e in group])
        peaks = [SuffixPeaks() for _ in group]
        for start, pred, labels in every_step_chunks(detector.memory, detector.predictor, group,
                                                     detector.chunk, detector.device):
            surprise = pointwise_loss(pred.reshape(-1, *pred.shape[2:]),
                                      torch.from_numpy(labels.reshape(-1)), detector.kind)
            surprise = surprise.reshape(len(group), -1).numpy()
            for b, found in enumerate(peaks):
                valid = min(len(labels[b]), lengths[b] - start)
                if valid > 0:
                    found.push(start, surprise[b, :valid])
        for ep, found in zip(group, peaks):
            ep.extras["targets"] = TopOneTargets(found.steps, len(ep), rule.current)  # type: ignore[assignment]
