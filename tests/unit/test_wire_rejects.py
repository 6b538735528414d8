"""Tests for the wire schema: every way a peer's frame can be wrong is rejected, by reason.

The tests import msgpack themselves to play a hostile peer that builds frames by hand; the
production code reaches msgpack only through ``common/wire.py``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import msgpack
import numpy as np
import pytest

from common.errors import (
    DisallowedDtype,
    FrameTooLarge,
    MalformedFrame,
    SchemaVersionError,
    UnknownKind,
    WireError,
)
from common.wire import (
    KINDS,
    SCHEMA_VERSION,
    EpisodeDone,
    Segment,
    SegmentRequest,
    decode,
    encode,
)
from tests.unit.wire_samples import assert_same, fragment, golden_mark, one_of_each, reject, tamper

# ---------------------------------------------------------------- rejected frames


def test_oversized_frames_are_rejected_before_unpacking() -> None:
    garbage = b"\xc1" * 101  # 0xc1 is never valid msgpack: unpacking it would be malformed
    reject(garbage, FrameTooLarge, max_frame_bytes=100)
    reject(garbage[:100], MalformedFrame, max_frame_bytes=100)
    frame = encode(fragment())
    reject(frame, FrameTooLarge, match=str(len(frame)), max_frame_bytes=len(frame) - 1)
    assert_same(decode(frame, max_frame_bytes=len(frame)), fragment())
    with pytest.raises(FrameTooLarge):
        encode(fragment(), max_frame_bytes=len(frame) - 1)


def test_every_truncation_of_a_frame_is_malformed() -> None:
    frame = encode(fragment(steps=2))
    for end in range(len(frame)):
        reject(frame[:end], MalformedFrame)
    reject(frame + b"\x00", MalformedFrame)  # trailing bytes


def test_fuzzed_frames_decode_or_raise_a_wire_error() -> None:
    rng = np.random.default_rng(1234)
    frames = [encode(m) for m in one_of_each()]
    outcomes = {"decoded": 0, "rejected": 0}
    for i in range(1200):
        if i < 300:
            candidate = rng.bytes(int(rng.integers(0, 80)))
        else:
            data = bytearray(frames[i % len(frames)])
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(data)))
                action = i % 3
                if action == 0:
                    data[pos] = int(rng.integers(0, 256))
                elif action == 1:
                    data[pos:pos] = rng.bytes(int(rng.integers(1, 9)))
                else:
                    del data[pos: pos + int(rng.integers(1, 9))]
            candidate = bytes(data)
        try:
            msg = decode(candidate, max_frame_bytes=4096)
        except WireError:
            outcomes["rejected"] += 1
        else:
            assert type(msg) in KINDS.values()
            outcomes["decoded"] += 1
    assert outcomes["rejected"] > 900


@pytest.mark.parametrize("version, upgrade", [(SCHEMA_VERSION + 1, "this process"),
                                              (SCHEMA_VERSION - 1, "the sender")])
def test_other_schema_versions_are_rejected_with_a_remedy(version: int, upgrade: str) -> None:
    error = reject(tamper(encode(fragment()), v=version), SchemaVersionError)
    assert f"version {version}" in str(error) and f"speaks {SCHEMA_VERSION}" in str(error)
    assert f"upgrade {upgrade}" in str(error)


@pytest.mark.parametrize("value", [..., "1", True, 1.0, None])
def test_a_missing_or_non_integer_version_is_malformed(value: Any) -> None:
    reject(tamper(encode(fragment()), v=value), MalformedFrame, match="schema version")


def test_unknown_kinds_are_rejected() -> None:
    reject(tamper(encode(fragment()), k="fragment2"), UnknownKind, match="fragment2")
    reject(tamper(encode(fragment()), k=...), MalformedFrame, match="kind")
    reject(tamper(encode(fragment()), k=7), MalformedFrame, match="kind")


@pytest.mark.parametrize("body", [[1, 2], "text", 5, None, b"raw"], ids=repr)
def test_a_frame_that_is_not_a_map_is_malformed(body: Any) -> None:
    reject(msgpack.packb(body), MalformedFrame, match="not a map")


def test_non_msgpack_content_is_malformed() -> None:
    frame = encode(EpisodeDone(episode="e", actor="scorer", length=1, return_=0.0,
                               policy_version=0, fragments=1))
    reject(msgpack.packb({1: 2, "v": 1}), MalformedFrame)  # strict_map_key
    reject(msgpack.packb({"v": 1, "k": msgpack.ExtType(3, b"x")}), MalformedFrame)
    reject(frame.replace(b"scorer", b"\xff\xfescor"), MalformedFrame)  # invalid UTF-8
    reject(b"\xdd\xff\xff\xff\xff", MalformedFrame)  # claims 4 billion items in 5 bytes
    reject(b"\x91" * 5000, MalformedFrame)  # nested beyond any message
    reject(b"", MalformedFrame)


@pytest.mark.parametrize("field", ["run", "index", "arrays", "final", "policy_version"])
def test_missing_fields_are_named(field: str) -> None:
    reject(tamper(encode(fragment()), **{field: ...}), MalformedFrame, match=f"'{field}'")


def test_unknown_fields_are_rejected() -> None:
    reject(tamper(encode(fragment()), extra=1), MalformedFrame, match="unknown fields")


@pytest.mark.parametrize(
    "msg, field, value",
    [
        (fragment(), "index", "3"),
        (fragment(), "index", True),
        (fragment(), "index", 1.0),
        (fragment(), "final", 1),
        (fragment(), "run", 5),
        (fragment(), "run", None),
        (fragment(), "arrays", []),
        (fragment(), "arrays", {"x": [1, 2]}),
        (SegmentRequest(lane=0, episode=None, offset=0, credit=1, acks=[]), "acks", "s-1"),
        (SegmentRequest(lane=0, episode=None, offset=0, credit=1, acks=[]), "acks", [1]),
        (SegmentRequest(lane=0, episode=None, offset=0, credit=1, acks=[]), "episode", 3),
        (EpisodeDone(episode="e", actor="a", length=1, return_=0.0, policy_version=0,
                     fragments=1), "return", "now"),
        (EpisodeDone(episode="e", actor="a", length=1, return_=0.0, policy_version=0,
                     fragments=1), "return", True),
        (EpisodeDone(episode="e", actor="a", length=1, return_=0.0, policy_version=0,
                     fragments=1), "return", None),
    ],
    ids=lambda v: repr(v) if not dataclasses.is_dataclass(v) else type(v).__name__,
)
def test_fields_of_the_wrong_type_are_named(msg: Any, field: str, value: Any) -> None:
    frame = tamper(encode(msg), **{field: value})
    reject(frame, MalformedFrame, match=re.escape(f"{msg.KIND}.{field}"))


def array_frame(**array: Any) -> bytes:
    """A Mark frame whose ``surprise`` array map is replaced by ``array``."""
    return tamper(encode(golden_mark()), surprise=array)


def test_well_formed_array_maps_pass() -> None:
    data = np.array([1, 2, 3], dtype="<f4").tobytes()
    got = decode(array_frame(dtype="float32", shape=[3], data=data))
    np.testing.assert_array_equal(got.surprise, [1, 2, 3])


@pytest.mark.parametrize("dtype", ["object", "O", "complex64", "complex128", "<f4", "float128",
                                   "U1", "datetime64[ns]", "void"])
def test_disallowed_dtypes_are_rejected_on_decode(dtype: str) -> None:
    reject(array_frame(dtype=dtype, shape=[1], data=b"\x00" * 4), DisallowedDtype)


@pytest.mark.parametrize("array", [np.array([1, "a"], dtype=object), np.zeros(2, np.complex64),
                                   np.array(["a"]), np.zeros(2, "datetime64[s]"),
                                   np.zeros(2, [("a", "<i4")])],
                         ids=lambda a: str(a.dtype))
def test_disallowed_dtypes_are_rejected_on_encode(array: np.ndarray) -> None:
    msg = Segment(segment_id="s", lane=0, episode="e", offset=0, arrays={"x": array},
                  targets={}, policy_version=0, rollout=len(array))
    with pytest.raises(DisallowedDtype, match=r"segment\.arrays"):
        encode(msg)


@pytest.mark.parametrize(
    "array, match",
    [
        ({"dtype": "float32", "shape": [4], "data": b"\x00" * 12}, "needs 16 bytes"),
        ({"dtype": "float32", "shape": [2, 2], "data": b"\x00" * 12}, "needs 16 bytes"),
        ({"dtype": "float32", "shape": [3], "data": b"\x00" * 13}, "needs 12 bytes"),
        ({"dtype": "float32", "shape": [-3], "data": b"\x00" * 12}, "ints >= 0"),
        ({"dtype": "float32", "shape": [3, -1], "data": b""}, "ints >= 0"),
        ({"dtype": "float32", "shape": [True, 3], "data": b"\x00" * 12}, "ints >= 0"),
        ({"dtype": "float32", "shape": [3.0], "data": b"\x00" * 12}, "ints >= 0"),
        ({"dtype": "float32", "shape": [1] * 33, "data": b"\x00" * 4}, "at most"),
        ({"dtype": "float32", "shape": [2**64 - 1], "data": b"\x00" * 4}, "needs"),
        ({"dtype": "float32", "shape": [0, 2**63], "data": b""}, "unusable shape"),
        ({"dtype": "float32", "shape": 3, "data": b"\x00" * 12}, "shape a list"),
        ({"dtype": "float32", "shape": [3], "data": "\x00" * 12}, "data bytes"),
        ({"dtype": "float32", "shape": [3]}, "dtype, shape and data"),
        ({"dtype": "float32", "shape": [3], "data": b"\x00" * 12, "x": 1}, "dtype, shape"),
    ],
)
def test_inconsistent_array_maps_are_malformed(array: dict[str, Any], match: str) -> None:
    reject(tamper(encode(golden_mark()), surprise=array), MalformedFrame, match=match)


def test_bool_arrays_hold_only_zeros_and_ones() -> None:
    good = {"dtype": "bool", "shape": [2], "data": b"\x00\x01"}
    frame = tamper(encode(fragment(steps=2)), arrays={"dones": good})
    assert decode(frame).arrays["dones"].tolist() == [False, True]
    bad = {"dtype": "bool", "shape": [2], "data": b"\x00\x02"}
    reject(tamper(encode(fragment(steps=2)), arrays={"dones": bad}), MalformedFrame,
           match="bool")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"episode": "ep:1"}, "episode"),
        ({"run": ""}, "run"),
        ({"index": -1}, "index"),
        ({"arrays": {"a": {"dtype": "int8", "shape": [2], "data": b"ab"},
                     "b": {"dtype": "int8", "shape": [3], "data": b"abc"}}}, "one row per step"),
        ({"arrays": {"a": {"dtype": "int8", "shape": [], "data": b"a"}}}, "one row per step"),
    ],
)
def test_values_the_message_rejects_are_malformed(changes: dict[str, Any], match: str) -> None:
    reject(tamper(encode(fragment()), **changes), MalformedFrame, match=match)


def test_mark_targets_must_index_the_episode() -> None:
    targets = {"dtype": "int64", "shape": [3, 1], "data": np.array([0, 3, 2], "<i8").tobytes()}
    reject(tamper(encode(golden_mark()), targets=targets), MalformedFrame, match="0..2")
    wrong_dtype = {"dtype": "float32", "shape": [3, 1], "data": b"\x00" * 12}
    reject(tamper(encode(golden_mark()), targets=wrong_dtype), MalformedFrame, match="Mark")


