"""A lane slice survives the wire: scorer's to_segment, encode, decode, learner's to_slice."""

from __future__ import annotations

import numpy as np

from common.segments import steps, to_segment, to_slice
from common.wire import decode, encode
from memup.batch import lane_slice
from memup.episode import Episode


def test_a_lane_slice_comes_back_whole_after_the_wire() -> None:
    rng = np.random.default_rng(0)
    T, K = 50, 2
    episode = Episode(rng.normal(size=(T, 6)).astype(np.float32),
                      rng.normal(size=(T, 3)).astype(np.float32),
                      rng.normal(size=T).astype(np.float32),
                      extras={"targets": rng.integers(0, T, size=(T, K))})
    piece = lane_slice(episode, offset=40, rollout=20, frequency=5)
    seg = decode(encode(to_segment(piece, segment_id="e.40", lane=3, episode="e", rollout=20)))
    back = to_slice(seg)
    assert (seg.offset, seg.lane, seg.rollout, steps(seg)) == (40, 3, 20, 10)  # cut at the end
    for name in ("inputs", "queries", "pair_step", "pair_target", "pair_queries", "pair_labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(piece, name), err_msg=name)
    assert back.offset == 40 and back.pair_context is None
