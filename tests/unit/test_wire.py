"""Tests for the wire schema: round trips, pinned bytes, and every way a peer's frame can be wrong.

The tests import msgpack themselves to play a hostile peer that builds frames by hand; the
production code reaches msgpack only through ``common/wire.py``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
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
    Fragment,
    Heartbeat,
    Mark,
    Segment,
    SegmentRequest,
    WeightsAnnouncement,
    decode,
    encode,
)

ROOT = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


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
                policy_version=4),
        WeightsAnnouncement(name="detector", version=12, sha256=SHA, nbytes=1 << 33),
        Heartbeat(role="scorer", replica="1", time=1.7e9 + 0.25),
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


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("msg", one_of_each(), ids=lambda m: type(m).__name__)
def test_every_kind_round_trips(msg: Any) -> None:
    assert_same(decode(encode(msg)), msg)


def test_every_kind_is_covered() -> None:
    assert {type(m).KIND for m in one_of_each()} == set(KINDS)
    assert set(KINDS) == {"fragment", "episode_done", "mark", "segment_request", "segment",
                          "weights", "heartbeat"}


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
        policy_version=0,
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
    got = decode(tamper(encode(Heartbeat(role="learner", replica="0", time=1.5)), time=2))
    assert got.time == 2.0 and type(got.time) is float


# ---------------------------------------------------------------- pinned bytes

GOLDEN_MARK = bytes.fromhex(
    "86a17601a16ba46d61726ba7657069736f6465a465702d31a8737572707269736583a56474797065a7666c6f"
    "61743332a573686170659103a464617461c40c0000803f000000bf00000000a77461726765747383a5647479"
    "7065a5696e743634a57368617065920301a464617461c4180000000000000000020000000000000002000000"
    "00000000ae73636f7265725f76657273696f6e03"
)
GOLDEN_HEARTBEAT = bytes.fromhex(
    "85a17601a16ba9686561727462656174a4726f6c65a673636f726572a77265706c696361a132a474696d65cb"
    "3ff8000000000000"
)


def golden_mark() -> Mark:
    return Mark(episode="ep-1", surprise=np.array([1.0, -0.5, 0.0], dtype=np.float32),
                targets=np.array([[0], [2], [2]], dtype=np.int64), scorer_version=3)


def golden_heartbeat() -> Heartbeat:
    return Heartbeat(role="scorer", replica="2", time=1.5)


def test_golden_bytes_pin_the_format() -> None:
    assert encode(golden_mark()) == GOLDEN_MARK
    assert encode(golden_heartbeat()) == GOLDEN_HEARTBEAT
    assert_same(decode(GOLDEN_MARK), golden_mark())
    assert decode(GOLDEN_HEARTBEAT) == golden_heartbeat()


def test_frame_layout_is_the_documented_one() -> None:
    body = msgpack.unpackb(encode(EpisodeDone(episode="e", actor="a", length=1, return_=0.0,
                                              policy_version=0, fragments=1)))
    assert list(body) == ["v", "k", "episode", "actor", "length", "return", "policy_version",
                          "fragments"]
    assert body["v"] == SCHEMA_VERSION == 1 and body["k"] == "episode_done"
    array = msgpack.unpackb(encode(golden_mark()))["targets"]
    assert array == {"dtype": "int64", "shape": [3, 1],
                     "data": np.array([0, 2, 2], dtype="<i8").tobytes()}


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


@pytest.mark.parametrize("version, upgrade", [(2, "this process"), (0, "the sender")])
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
    frame = encode(Heartbeat(role="scorer", replica="1", time=0.0))
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
        (Heartbeat(role="scorer", replica="1", time=0.0), "time", "now"),
        (Heartbeat(role="scorer", replica="1", time=0.0), "time", True),
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
                  targets={}, policy_version=0)
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


# ---------------------------------------------------------------- building messages


def test_invalid_messages_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="episode"):
        dataclasses.replace(fragment(), episode="a b")
    with pytest.raises(ValueError, match="row per step"):
        dataclasses.replace(fragment(), arrays={"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="offset 0"):
        SegmentRequest(lane=0, episode=None, offset=5, credit=1, acks=[])
    with pytest.raises(ValueError, match="sha256"):
        WeightsAnnouncement(name="policy", version=1, sha256="AB" * 32, nbytes=1)
    with pytest.raises(ValueError, match="length"):
        EpisodeDone(episode="e", actor="a", length=0, return_=0.0, policy_version=0,
                    fragments=1)
    with pytest.raises(ValueError, match="Mark"):
        Mark(episode="e", surprise=np.zeros(3), targets=np.zeros((3, 1), np.int64),
             scorer_version=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fragment().index = 3  # type: ignore[misc]


def test_encode_rejects_what_is_not_a_message_or_has_wrong_types() -> None:
    with pytest.raises(TypeError, match="not a wire message"):
        encode({"v": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"heartbeat\.time"):
        encode(Heartbeat(role="scorer", replica="1", time="now"))  # type: ignore[arg-type]
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
