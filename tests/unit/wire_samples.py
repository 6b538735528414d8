"""Sample messages and frame helpers shared by the wire tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from common.errors import WireError
from common.wire import (
    EpisodeDone,
    Fragment,
    Mark,
    Rollout,
    RolloutRequest,
    Segment,
    SegmentRequest,
    decode,
)

ROOT = Path(__file__).resolve().parents[2]


def fragment(steps: int = 4, seed: int = 0) -> Fragment:
    rng = np.random.default_rng(seed)
    return Fragment(
        run="run-1", actor="actor-0", episode="ep-7", index=2, first_step=256,
        arrays={
            "observations": rng.integers(0, 256, (steps, 3, 4, 5), dtype=np.uint8),
            "actions": rng.integers(0, 3, steps, dtype=np.int64),
            "rewards": rng.standard_normal(steps).astype(np.float32),
            "dones": np.arange(steps) == steps - 1,
        },
        policy_version=11, final=True,
    )


def one_of_each() -> list[Any]:
    rng = np.random.default_rng(1)
    return [
        fragment(),
        EpisodeDone(episode="ep-7", actor="actor-0", length=300, return_=-1.25,
                    policy_version=11, fragments=3),
        Mark(episode="ep-7", surprise=rng.random(5, dtype=np.float32),
             targets=np.array([[4, 1], [4, 1], [4, 2], [4, 3], [4, 4]], dtype=np.int32),
             scorer_version=5),
        SegmentRequest(lane=3, episode="ep-7", offset=120, credit=2, acks=["s-1", "s-2"]),
        SegmentRequest(lane=5, episode=None, offset=0, credit=1, acks=[]),
        Segment(segment_id="s-3", lane=3, episode="ep-7", offset=120,
                arrays={"inputs": rng.standard_normal((6, 2)).astype(np.float16),
                        "labels": np.arange(6, dtype=np.int16)},
                targets={"indices": np.full((6, 2), 9, dtype=np.int64),
                         "weight": np.ones((6, 2), dtype=np.float64),
                         "mask": np.ones((6, 2), dtype=np.int8), "scale": np.array(2.0)},
                policy_version=4, rollout=8),
        RolloutRequest(credit=4, acks=["1700000000000-0"], policy_version=9, max_lag=2),
        Rollout(rollout_id="1700000000000-1", episode="ep-8",
                arrays={"actions": np.arange(3, dtype=np.int64),
                        "log_probs": np.zeros(3, dtype=np.float32)}, policy_version=8),
    ]


def assert_same(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    for f in dataclasses.fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, np.ndarray):
            a, b = {"": a}, {"": b}
        if isinstance(b, dict):
            assert a.keys() == b.keys(), f.name
            for key in b:
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (f.name, key)
                np.testing.assert_array_equal(a[key], b[key])
        else:
            assert type(a) is type(b) and a == b, f.name


def tamper(frame: bytes, **changes: Any) -> bytes:
    """Re-packs ``frame`` with top-level entries changed (a value of ``...`` deletes it)."""
    body = msgpack.unpackb(frame)
    for key, value in changes.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    return msgpack.packb(body)


def reject(
    frame: bytes, error: type[WireError], match: str | None = None, **kwargs: Any
) -> WireError:
    with pytest.raises(error, match=match) as info:
        decode(frame, **kwargs)
    assert type(info.value) is error
    return info.value

def golden_mark() -> Mark:
    return Mark(episode="ep-1", surprise=np.array([1.0, -0.5, 0.0], dtype=np.float32),
                targets=np.array([[0], [2], [2]], dtype=np.int64), scorer_version=3)


def synthetic_frames(n: int, seed: int = 0) -> np.ndarray:
    """A stand-in for ViZDoom frames, uint8 ``[n, 3, 64, 112]``, for tests only: a smooth
    wall and floor, a few coloured blobs drifting across the view, and a little noise.
    Only for exercising the codecs: its compression ratio says nothing about real frames."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:112].astype(np.float32)
    base = np.where(y < 30, 90 + 0.3 * x, 40 + 2.0 * (y - 30))[None] * np.array(
        [1.0, 0.8, 0.6], np.float32)[:, None, None]
    colours = rng.integers(0, 256, (4, 3)).astype(np.float32)
    start, speed = rng.uniform(0, 112, (4, 2)), rng.uniform(-1.5, 1.5, (4, 2))
    frames = np.empty((n, 3, 64, 112), np.uint8)
    for t in range(n):
        image = base.copy()
        for (cx, cy), colour in zip(start + t * speed, colours, strict=True):
            blob = np.exp(-((x - cx % 112) ** 2 + (y - cy % 64) ** 2) / 60.0)
            image += blob[None] * (colour[:, None, None] - image)
        image += rng.normal(0, 1, image.shape)
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)
    return frames
