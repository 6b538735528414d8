"""The lane sampler: B lanes walk episodes rollout by rollout, producing training batches.

Each lane holds one marked episode and an offset. A batch is the next ``r`` steps of every
lane, plus, for every prediction step in it, the features and labels of its marked targets
(which may lie anywhere later in the episode). A lane that finished its episode loads the
next one; newly needed episodes are marked in groups (one scoring pass for many).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from memup.episode import Episode
from memup.stream import pad_chunk
from memup.targets import prediction_steps

EpisodeSource = Callable[[int], list[Episode]]
Marker = Callable[[list[Episode]], None]


@dataclass
class Batch:
    """One training batch of ``B`` lanes × up to ``r`` steps.

    Attributes:
        inputs: ``[B, r, ...]`` memory inputs, zero-padded past a lane's episode end.
        queries: ``[B, r, ...]`` the slice's own query features (for a live context LSTM).
        fresh: ``[B]`` bool, the lane starts a new episode at this batch's first step.
        pair_lane, pair_step: ``[N]`` which lane and which step in the slice predicts.
        pair_target: ``[N]`` absolute index of the target step in its episode.
        pair_local: ``[N]`` the target's step in this slice, or -1 when it lies outside.
        pair_queries: ``[N, ...]`` features of the target steps.
        pair_labels: ``[N]`` outcomes of the target steps.
        pair_context: ``[N, C]`` stored context at the target steps, when episodes carry it.
        steps: memory steps in the batch (excluding padding).
    """

    inputs: torch.Tensor
    queries: torch.Tensor
    fresh: torch.Tensor
    pair_lane: torch.Tensor
    pair_step: torch.Tensor
    pair_target: torch.Tensor
    pair_local: torch.Tensor
    pair_queries: torch.Tensor
    pair_labels: torch.Tensor
    pair_context: torch.Tensor | None
    steps: int

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                 for k, v in self.__dict__.items()}
        return Batch(**moved)


class LaneSampler:
    """Walks B lanes through episodes ``r`` steps at a time.

    Args:
        source: returns ``n`` new episodes.
        mark: attaches ``extras["targets"]`` (and optional ``"context"``) to episodes.
        lanes: B.
        rollout: r, steps per batch and lane.
        frequency: f, every f-th step of a rollout (and its last) predicts.
        load_batch: episodes drawn and marked together when a lane needs one (default B).
    """

    def __init__(self, source: EpisodeSource, mark: Marker, lanes: int, rollout: int,
                 frequency: int = 1, load_batch: int | None = None) -> None:
        if not 1 <= frequency <= rollout:
            raise ValueError(f"prediction frequency must be in [1, r={rollout}], got {frequency}")
        self.source = source
        self.mark = mark
        self.lanes = lanes
        self.rollout = rollout
        self.frequency = frequency
        self.load_batch = load_batch or lanes
        self.episodes: list[Episode | None] = [None] * lanes
        self.offsets = np.zeros(lanes, dtype=np.int64)
        self.ready: deque[Episode] = deque()
        self.episodes_loaded = 0

    def _next_episode(self) -> Episode:
        if not self.ready:
            fresh = self.source(self.load_batch)
            self.mark(fresh)
            self.ready.extend(fresh)
        self.episodes_loaded += 1
        return self.ready.popleft()

    def next_batch(self) -> Batch:
        """The next rollout of every lane (loading new episodes where lanes finished)."""
        fresh = np.zeros(self.lanes, dtype=bool)
        for b in range(self.lanes):
            ep = self.episodes[b]
            if ep is None or self.offsets[b] >= len(ep):
                self.episodes[b] = self._next_episode()
                self.offsets[b] = 0
                fresh[b] = True
        eps: list[Episode] = self.episodes  # type: ignore[assignment]
        r = self.rollout
        inputs = np.stack([pad_chunk([e.inputs], o, o + r)[0] for e, o in zip(eps, self.offsets)])
        queries = np.stack([pad_chunk([e.queries], o, o + r)[0]
                            for e, o in zip(eps, self.offsets)])
        lanes, steps, targets, local, pq, pl, pc = [], [], [], [], [], [], []
        has_context = all("context" in e.extras for e in eps)
        total = 0
        for b, (ep, o) in enumerate(zip(eps, self.offsets)):
            end = min(o + r, len(ep))
            total += end - o
            pred = prediction_steps(int(o), int(end), self.frequency)
            tgt = ep.extras["targets"][pred]  # [P, K]
            width = tgt.shape[1]
            flat = tgt.reshape(-1)
            lanes.append(np.full(len(flat), b))
            steps.append(np.repeat(pred - o, width))
            targets.append(flat)
            local.append(np.where((flat >= o) & (flat < end), flat - o, -1))
            pq.append(ep.queries[flat])
            pl.append(ep.labels[flat])
            if has_context:
                pc.append(ep.extras["context"][flat])
            self.offsets[b] = end
        return Batch(
            inputs=torch.from_numpy(inputs),
            queries=torch.from_numpy(queries),
            fresh=torch.from_numpy(fresh),
            pair_lane=torch.from_numpy(np.concatenate(lanes)).long(),
            pair_step=torch.from_numpy(np.concatenate(steps)).long(),
            pair_target=torch.from_numpy(np.concatenate(targets)).long(),
            pair_local=torch.from_numpy(np.concatenate(local)).long(),
            pair_queries=torch.from_numpy(np.concatenate(pq)),
            pair_labels=torch.from_numpy(np.concatenate(pl)),
            pair_context=torch.from_numpy(np.concatenate(pc)) if has_context else None,
            steps=total,
        )

    # -- checkpointing: the lanes' episodes and offsets are part of the training state --------

    def state_dict(self) -> dict:
        """Lanes, offsets and the ready queue, as tensors (loadable with weights_only)."""
        return {
            "episodes": [None if e is None else _episode_state(e) for e in self.episodes],
            "offsets": torch.from_numpy(self.offsets.copy()),
            "ready": [_episode_state(e) for e in self.ready],
            "episodes_loaded": self.episodes_loaded,
        }

    def load_state_dict(self, state: dict) -> None:
        self.episodes = [None if e is None else _episode_from_state(e) for e in state["episodes"]]
        self.offsets = state["offsets"].numpy().copy()
        self.ready = deque(_episode_from_state(e) for e in state["ready"])
        self.episodes_loaded = int(state["episodes_loaded"])


def _episode_state(ep: Episode) -> dict:
    return {
        "inputs": torch.from_numpy(ep.inputs), "queries": torch.from_numpy(ep.queries),
        "labels": torch.from_numpy(ep.labels),
        "extras": {k: torch.from_numpy(v) for k, v in ep.extras.items()},
    }


def _episode_from_state(state: dict) -> Episode:
    return Episode(
        state["inputs"].numpy(), state["queries"].numpy(), state["labels"].numpy(),
        {k: v.numpy() for k, v in state["extras"].items()},
    )
