"""Segments and batches: one lane's next ``r`` steps with their targets, and B of them stacked.

:func:`lane_slice` cuts the segment a lane trains on next out of a marked episode; it is what
the segment server sends over the wire. :func:`collate` stacks the segments of all B lanes
into one :class:`Batch` for the update. The single-process sampler uses the same two
functions, so a distributed run trains on exactly the batches a local run would build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memup.episode import Episode
from memup.stream import pad_chunk
from memup.targets import prediction_steps


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


@dataclass
class LaneSlice:
    """One lane's segment: ``n <= r`` consecutive steps and the targets of its prediction steps.

    Attributes:
        inputs: ``[n, ...]`` memory inputs of the steps.
        queries: ``[n, ...]`` query features of the steps.
        pair_step: ``[P]`` step within the slice that predicts (each repeated K times).
        pair_target: ``[P]`` absolute episode step of the target.
        pair_queries: ``[P, ...]`` features of the target steps.
        pair_labels: ``[P]`` outcomes of the target steps.
        pair_context: ``[P, C]`` stored context at the targets, or None.
        offset: episode step of the slice's first row.
    """

    inputs: np.ndarray
    queries: np.ndarray
    pair_step: np.ndarray
    pair_target: np.ndarray
    pair_queries: np.ndarray
    pair_labels: np.ndarray
    pair_context: np.ndarray | None
    offset: int

    @property
    def end(self) -> int:
        """Episode step just past the slice."""
        return self.offset + len(self.inputs)


def lane_slice(episode: Episode, offset: int, rollout: int, frequency: int = 1) -> LaneSlice:
    """The segment starting at ``offset``: up to ``rollout`` steps and their marked targets.

    Args:
        episode: a marked episode (``extras["targets"]`` ``[T, K]``, optional ``"context"``).
        offset: first step, ``0 <= offset < len(episode)``.
        rollout: r.
        frequency: every f-th step of the slice (and its last) predicts.
    """
    if not 0 <= offset < len(episode):
        raise ValueError(f"offset {offset} outside the episode of {len(episode)} steps")
    end = min(offset + rollout, len(episode))
    pred = prediction_steps(offset, end, frequency)
    targets = episode.extras["targets"][pred]  # [P, K]
    flat = targets.reshape(-1)
    context = episode.extras.get("context")
    return LaneSlice(
        inputs=episode.inputs[offset:end],
        queries=episode.queries[offset:end],
        pair_step=np.repeat(pred - offset, targets.shape[1]),
        pair_target=flat,
        pair_queries=episode.queries[flat],
        pair_labels=episode.labels[flat],
        pair_context=None if context is None else context[flat],
        offset=offset,
    )


def collate(slices: list[LaneSlice], fresh: np.ndarray, rollout: int) -> Batch:
    """Stacks one slice per lane into a :class:`Batch` (slices shorter than r are padded).

    Args:
        slices: lane b's slice at position b.
        fresh: ``[B]`` bool, lane b starts a new episode with this slice.
        rollout: r, the padded time length.
    """
    inputs = pad_chunk([s.inputs for s in slices], 0, rollout)
    queries = pad_chunk([s.queries for s in slices], 0, rollout)
    has_context = all(s.pair_context is not None for s in slices)
    local = [np.where((s.pair_target >= s.offset) & (s.pair_target < s.end),
                      s.pair_target - s.offset, -1) for s in slices]

    def cat(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(arrays))

    return Batch(
        inputs=torch.from_numpy(inputs),
        queries=torch.from_numpy(queries),
        fresh=torch.from_numpy(np.asarray(fresh, dtype=bool)),
        pair_lane=cat([np.full(len(s.pair_target), b) for b, s in enumerate(slices)]).long(),
        pair_step=cat([s.pair_step for s in slices]).long(),
        pair_target=cat([s.pair_target for s in slices]).long(),
        pair_local=cat(local).long(),
        pair_queries=cat([s.pair_queries for s in slices]),
        pair_labels=cat([s.pair_labels for s in slices]),
        pair_context=cat([s.pair_context for s in slices]) if has_context else None,  # type: ignore[misc]
        steps=sum(len(s.inputs) for s in slices),
    )
