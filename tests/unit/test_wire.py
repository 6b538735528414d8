"""Tests for the wire schema: round trips, pinned bytes, building messages, the import rule."""

from __future__ import annotations

import ast
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
    Mark,
    Segment,
    SegmentRequest,
    decode,
    encode,
)
from tests.unit.wire_samples import ROOT, assert_same, fragment, golden_mark, one_of_each, tamper

# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("msg", one_of_each(), ids=lambda m: type(m).__name__)
def test_every_kind_round_trips(msg: Any) -> None:
    assert_same(decode(encode(msg)), msg)


def test_every_kind_is_covered() -> None:
    assert {type(m).KIND for m in one_of_each()} == set(KINDS)
    assert set(KINDS) == {"fragment", "episode_done", "mark", "segment_request", "segment",
                          "rollout_request", "rollout"}


def test_decoded_arrays_are_read_only_views_of_the_frame_bytes() -> None:
    got = decode(encode(fragment(steps=16)))
    for name, array in got.arrays.items():
        assert not array.flags.writeable and not array.flags.owndata, name
        base = array
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base, bytes), name  # np.frombuffer over the unpacked bytes: no copy
        with pytest.raises(ValueError):
            array[...] = 0


def test_decode_accepts_any_bytes_like_frame() -> None:
    frame = encode(fragment())
    for view in (bytearray(frame), memoryview(frame)):
        assert_same(decode(view), fragment())


def test_encode_normalises_layout_and_byte_order() -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    msg = Segment(
        segment_id="s", lane=0, episode="e", offset=0,
        arrays={"strided": base[:, ::2], "transposed": base.T[:4], "big": base.astype(">i4"),
                "empty": np.zeros((4, 0, 3), dtype=np.float32)},
        targets={"scalar": np.array(7, dtype=">u1"), "none": np.zeros(0, dtype=bool)},
        policy_version=0, rollout=4,
    )
    got = decode(encode(msg))
    for key, array in {**msg.arrays, **msg.targets}.items():
        out = got.arrays.get(key, got.targets.get(key))
        assert out.shape == array.shape and out.dtype == array.dtype.newbyteorder("<"), key
        assert out.dtype.byteorder in "<=|", key
        np.testing.assert_array_equal(out, array)


def test_numpy_scalars_encode_as_plain_values() -> None:
    msg = EpisodeDone(episode="e", actor="a", length=np.int64(5), return_=np.float32(0.5),
                      policy_version=np.uint8(2), fragments=np.int32(1))
    got = decode(encode(msg))
    assert got == EpisodeDone(episode="e", actor="a", length=5, return_=0.5, policy_version=2,
                              fragments=1)
    assert type(got.length) is int and type(got.return_) is float
    final = decode(encode(dataclasses.replace(fragment(), final=np.bool_(False)))).final
    assert final is False


def test_a_whole_float_sent_as_an_int_decodes_as_a_float() -> None:
    done = EpisodeDone(episode="e", actor="a", length=1, return_=1.5, policy_version=0,
                       fragments=1)
    got = decode(tamper(encode(done), **{"return": 2}))
    assert got.return_ == 2.0 and type(got.return_) is float


# ---------------------------------------------------------------- pinned bytes

GOLDEN_MARK = bytes.fromhex(
    "86a17604a16ba46d61726ba7657069736f6465a465702d31a8737572707269736583a56474797065a7666c6f"
    "61743332a573686170659103a464617461c40c0000803f000000bf00000000a77461726765747383a5647479"
    "7065a5696e743634a57368617065920301a464617461c4180000000000000000020000000000000002000000"
    "00000000ae73636f7265725f76657273696f6e03"
)
GOLDEN_EPISODE_DONE = bytes.fromhex(
    "88a17604a16bac657069736f64655f646f6e65a7657069736f6465a465702d32a56163746f72a3612d31a66c"
    "656e67746807a672657475726ecb3ff8000000000000ae706f6c6963795f76657273696f6e03a9667261676d"
    "656e747302"
)




def golden_episode_done() -> EpisodeDone:
    return EpisodeDone(episode="ep-2", actor="a-1", length=7, return_=1.5, policy_version=3,
                       fragments=2)


def test_golden_bytes_pin_the_format() -> None:
    assert encode(golden_mark()) == GOLDEN_MARK
    assert encode(golden_episode_done()) == GOLDEN_EPISODE_DONE
    assert_same(decode(GOLDEN_MARK), golden_mark())
    assert decode(GOLDEN_EPISODE_DONE) == golden_episode_done()


def test_frame_layout_is_the_documented_one() -> None:
    body = msgpack.unpackb(encode(EpisodeDone(episode="e", actor="a", length=1, return_=0.0,
                                              policy_version=0, fragments=1)))
    assert list(body) == ["v", "k", "episode", "actor", "length", "return", "policy_version",
                          "fragments"]
    assert body["v"] == SCHEMA_VERSION == 4 and body["k"] == "episode_done"
    array = msgpack.unpackb(encode(golden_mark()))["targets"]
    assert array == {"dtype": "int64", "shape": [3, 1],
                     "data": np.array([0, 2, 2], dtype="<i8").tobytes()}


# ---------------------------------------------------------------- building messages


def test_invalid_messages_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="episode"):
        dataclasses.replace(fragment(), episode="a b")
    with pytest.raises(ValueError, match="row per step"):
        dataclasses.replace(fragment(), arrays={"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="offset 0"):
        SegmentRequest(lane=0, episode=None, offset=5, credit=1, acks=[])
    with pytest.raises(ValueError, match="length"):
        EpisodeDone(episode="e", actor="a", length=0, return_=0.0, policy_version=0,
                    fragments=1)
    with pytest.raises(ValueError, match="Mark"):
        Mark(episode="e", surprise=np.zeros(3), targets=np.zeros((3, 1), np.int64),
             scorer_version=0)
    with pytest.raises(ValueError, match=r"rollout must be >= 1"):
        Segment(segment_id="s", lane=0, episode="e", offset=0, arrays={"x": np.zeros(2)},
                targets={}, policy_version=0, rollout=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fragment().index = 3  # type: ignore[misc]


def test_a_segment_carries_the_rollout_it_was_cut_with() -> None:
    msg = Segment(segment_id="s", lane=1, episode="e", offset=10, arrays={"x": np.zeros(3)},
                  targets={}, policy_version=0, rollout=8)
    body = msgpack.unpackb(encode(msg))
    assert body["rollout"] == 8 and list(body)[-1] == "rollout"
    del body["rollout"]  # a segment of schema 3, which had no r: refused, never guessed
    with pytest.raises(MalformedFrame, match="lacks field 'rollout'"):
        decode(msgpack.packb({**body, "v": SCHEMA_VERSION}, use_bin_type=True))


def test_encode_rejects_what_is_not_a_message_or_has_wrong_types() -> None:
    with pytest.raises(TypeError, match="not a wire message"):
        encode({"v": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"episode_done\.return"):
        encode(EpisodeDone(episode="e", actor="a", length=1, return_="now",  # type: ignore[arg-type]
                           policy_version=0, fragments=1))
    with pytest.raises(TypeError, match=r"fragment\.final"):
        encode(dataclasses.replace(fragment(), final=1))
    with pytest.raises(TypeError, match=r"fragment\.arrays"):
        encode(dataclasses.replace(fragment(), arrays={"x": [1, 2]}))


# ---------------------------------------------------------------- errors and the rule


def test_each_error_has_its_own_label_safe_reason() -> None:
    reasons = {
        MalformedFrame: "malformed", FrameTooLarge: "too_large",
        SchemaVersionError: "schema_version", DisallowedDtype: "dtype",
        UnknownKind: "unknown_kind",
    }
    for error, reason in reasons.items():
        assert issubclass(error, WireError) and issubclass(error, ValueError)
        assert error.reason == reason == error("x").reason
        assert re.fullmatch(r"[a-z_]+", reason)
    assert re.fullmatch(r"[a-z_]+", WireError.reason)


def test_only_the_wire_module_imports_msgpack_or_pickle() -> None:
    offenders = []
    for package in ("memup", "common", "actor", "scorer", "learner", "cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    root = name.split(".")[0]
                    if root in {"pickle", "cloudpickle", "dill", "marshal", "shelve"} or (
                        root == "msgpack" and path != ROOT / "common" / "wire.py"
                    ):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not offenders, offenders
