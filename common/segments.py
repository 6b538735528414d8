"""A MemUP lane slice on the wire: the one mapping between :class:`memup.batch.LaneSlice`
and a :class:`common.wire.Segment`'s arrays. The scorer sends with :func:`to_segment`, the
learner reads with :func:`to_slice`, so the array names live here only."""

from __future__ import annotations

from common.wire import Segment
from memup.batch import LaneSlice

#: ``[n, ...]`` rows, one per step of the slice
STEP_ARRAYS = ("inputs", "queries")
#: ``[P, ...]`` rows, one per (predicting step, target) pair
TARGET_ARRAYS = ("pair_step", "pair_target", "pair_queries", "pair_labels")


def to_segment(piece: LaneSlice, *, segment_id: str, lane: int, episode: str,
               rollout: int) -> Segment:
    """The segment that carries ``piece`` (cut with r = ``rollout``) to a learner's lane."""
    return Segment(segment_id=segment_id, lane=lane, episode=episode, offset=piece.offset,
                   arrays={name: getattr(piece, name) for name in STEP_ARRAYS},
                   targets={name: getattr(piece, name) for name in TARGET_ARRAYS},
                   policy_version=0, rollout=rollout)


def to_slice(seg: Segment) -> LaneSlice:
    """The lane slice a segment carries."""
    # No stored context: scorers mark episodes without one (only single-process runs'
    # TargetRule(context=True) stores it), so no segment carries it.
    return LaneSlice(**{name: seg.arrays[name] for name in STEP_ARRAYS},
                     **{name: seg.targets[name] for name in TARGET_ARRAYS},
                     pair_context=None, offset=seg.offset)


def steps(seg: Segment) -> int:
    """How many episode steps the segment covers."""
    return len(seg.arrays[STEP_ARRAYS[0]])
