"""Tests for compressed arrays on the wire: round trips, raw fallback, bounded decompression."""

from __future__ import annotations

import threading
from typing import Any

import lz4.block
import msgpack
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import common.wire_codec as wire_codec
from common.errors import FrameTooLarge, MalformedFrame, WireError
from common.wire import DTYPES, KINDS, Fragment, Segment, decode, encode
from common.wire_codec import RAW, WireCodec
from tests.unit.wire_samples import (
    assert_same,
    one_of_each,
    reject,
    synthetic_frames,
    tamper,
)

CODECS = [WireCodec("lz4"), WireCodec("zstd", 1), WireCodec("zstd", 3), WireCodec("zstd", -5)]
MB = 1 << 20


def image_fragment(steps: int = 16, seed: int = 0) -> Fragment:
    return Fragment(run="run-1", actor="actor-0", episode="ep-1", index=0, first_step=0,
                    arrays={"obs": synthetic_frames(steps, seed),
                            "action": np.arange(steps, dtype=np.int64) % 8,
                            "reward": np.zeros(steps, np.float32)},
                    policy_version=0, final=False)


def segment(**arrays: np.ndarray) -> Segment:
    return Segment(segment_id="s-1", lane=0, episode="ep-1", offset=0, arrays=arrays,
                   targets={}, policy_version=0, rollout=max(map(len, arrays.values())))


def codecs_of(frame: bytes, field: str = "arrays") -> dict[str, str | None]:
    return {k: v.get("codec") for k, v in msgpack.unpackb(frame)[field].items()}


def array_frame(array: dict[str, Any], limit: int = 64 * MB) -> bytes:
    """A one-array Segment frame whose ``x`` map is replaced by ``array``."""
    return tamper(encode(segment(x=np.zeros(2, np.uint8)), limit), arrays={"x": array})


def assert_views_bytes(array: np.ndarray) -> None:
    """Read-only, and a view of one ``bytes`` (what decompression returned): no copy."""
    assert not array.flags.writeable
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, bytes)


def zstd_map(raw: bytes, shape: list[int], **kwargs: Any) -> dict[str, Any]:
    data = zstandard.ZstdCompressor(level=1, **kwargs).compress(raw)
    return {"dtype": "uint8", "shape": shape, "codec": "zstd", "data": data}


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: f"{c.name}{c.level}")
@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_dtype_round_trips_compressed(codec: WireCodec, dtype: str) -> None:
    rng = np.random.default_rng(0)
    smooth = np.repeat(rng.integers(0, 2, (40, 1, 1)), 64, axis=2).astype(dtype)  # compressible
    msg = segment(x=np.ascontiguousarray(np.broadcast_to(smooth, (40, 3, 64))))
    frame = encode(msg, codec=codec)
    assert codecs_of(frame) == {"x": codec.name}
    got = decode(frame)
    assert_same(got, msg)
    assert_views_bytes(got.arrays["x"])


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: f"{c.name}{c.level}")
def test_image_fragments_and_every_kind_round_trip(codec: WireCodec) -> None:
    msg = image_fragment()
    frame = encode(msg, codec=codec)
    assert len(frame) < msg.arrays["obs"].nbytes
    assert codecs_of(frame)["obs"] == codec.name
    assert codecs_of(frame)["action"] is None  # below min_bytes: raw
    got = decode(frame)
    assert_same(got, msg)
    assert_views_bytes(got.arrays["obs"])
    for other in one_of_each():
        assert_same(decode(encode(other, codec=codec)), other)


def test_the_default_and_codec_none_produce_the_raw_frame() -> None:
    msg = image_fragment()
    assert encode(msg) == encode(msg, codec=WireCodec("none")) == encode(msg, codec=RAW)
    assert set(codecs_of(encode(msg)).values()) == {None}


# ---------------------------------------------------------------- when to compress


def test_incompressible_and_small_arrays_travel_raw() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (8, 4096), dtype=np.uint8)
    zeros = np.zeros((8, 63), np.float64)  # 4032 bytes: below min_bytes
    for codec in CODECS:
        assert codecs_of(encode(segment(noise=noise, zeros=zeros), codec=codec)) == {
            "noise": None, "zeros": None}
    frame = encode(segment(zeros=zeros), codec=WireCodec("zstd", min_bytes=4000))
    assert codecs_of(frame) == {"zeros": "zstd"}


def test_arrays_beyond_the_budget_travel_raw_and_the_frame_limit_decides() -> None:
    big = np.zeros((4, MB // 4), np.uint8)  # 1 MiB, compresses to almost nothing
    codec = WireCodec("zstd")
    frame = encode(segment(a=big, b=big), 2 * MB + 4096, codec)
    assert codecs_of(frame) == {"a": "zstd", "b": "zstd"}
    assert len(frame) < 4096
    # Past the budget an array travels raw, so the receiver's limit is never exceeded.
    limit = int(1.5 * MB)
    frame = encode(segment(a=big, b=big), limit, codec)
    assert codecs_of(frame) == {"a": "zstd", "b": None}
    assert_same(decode(frame, limit), segment(a=big, b=big))
    with pytest.raises(FrameTooLarge):
        encode(segment(a=big, b=big, c=big), limit, codec)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown wire codec"):
        WireCodec("brotli")
    with pytest.raises(ValueError, match="level"):
        WireCodec("zstd", 22)
    with pytest.raises(ValueError, match="min_bytes"):
        WireCodec("lz4", min_bytes=-1)


def test_each_thread_keeps_its_own_zstd_compressor() -> None:
    seen: list[int] = []
    msgs = [image_fragment(8, seed) for seed in range(4)]

    def work() -> None:
        for _ in range(5):
            for msg in msgs:
                assert_same(decode(encode(msg, codec=WireCodec("zstd"))), msg)
        seen.append(id(wire_codec._zstd_compressor(WireCodec("zstd").level)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 3 and len(set(seen)) == 3


# ---------------------------------------------------------------- hostile frames


@pytest.mark.parametrize("codec", CODECS[:2], ids=lambda c: c.name)
def test_truncated_or_corrupt_compressed_data_is_malformed(codec: WireCodec) -> None:
    raw = np.zeros((64, 64), np.uint8)
    raw[::3] = 7
    good = msgpack.unpackb(encode(segment(x=raw), codec=codec))["arrays"]["x"]
    assert good["codec"] == codec.name
    for end in (0, 1, len(good["data"]) // 2, len(good["data"]) - 1):
        reject(array_frame({**good, "data": good["data"][:end]}), MalformedFrame)
    reject(array_frame({**good, "data": b"\xff" * 64}), MalformedFrame, match="corrupt")
    reject(array_frame({**good, "data": good["data"] + b"\x00" * 9}), MalformedFrame)
    for shape in ([64, 63], [64, 65], [0]):  # the data holds 4096 bytes, not that many
        reject(array_frame({**good, "shape": shape}), MalformedFrame)


@pytest.mark.parametrize("codec", ["brotli", "none", "", 5, None, b"zstd"], ids=repr)
def test_unknown_codecs_are_malformed(codec: Any) -> None:
    good = zstd_map(bytes(5000), [5000])
    reject(array_frame({**good, "codec": codec}), MalformedFrame, match="unknown codec")


def test_a_map_with_other_keys_is_malformed() -> None:
    good = zstd_map(bytes(5000), [5000])
    reject(array_frame({**good, "level": 3}), MalformedFrame, match="optionally codec")


def test_declared_sizes_beyond_the_limit_are_refused_before_decompressing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zstd_map(bytes(8 * MB), [8 * MB])  # ~250 bytes that inflate to 8 MiB
    assert len(bomb["data"]) < 1024
    assert decode(array_frame(bomb, 16 * MB), 16 * MB).arrays["x"].nbytes == 8 * MB

    def never(payload: bytes, size: int) -> bytes:
        raise AssertionError("decompressed a payload whose size was over the limit")

    monkeypatch.setattr(wire_codec, "_INFLATE", {"zstd": never, "lz4": never})
    reject(array_frame(bomb, 4 * MB), MalformedFrame, match="decompression bomb",
           max_frame_bytes=4 * MB)
    lz4_bomb = {**bomb, "codec": "lz4", "data": lz4.block.compress(bytes(8 * MB),
                                                                   store_size=False)}
    reject(array_frame(lz4_bomb, 4 * MB), MalformedFrame, match="beyond",
           max_frame_bytes=4 * MB)
    huge = {**bomb, "shape": [2**62, 4]}  # a size no allocation could hold
    reject(array_frame(huge), MalformedFrame, match="beyond")


def test_the_limit_covers_all_compressed_arrays_of_a_frame() -> None:
    one = zstd_map(bytes(3 * MB), [3 * MB])
    frame = tamper(encode(segment(a=np.zeros(1, np.uint8), b=np.zeros(1, np.uint8))),
                   arrays={"a": one, "b": one})
    assert len(decode(frame, 6 * MB).arrays) == 2
    reject(frame, MalformedFrame, match="left of the frame's limit", max_frame_bytes=5 * MB)


def test_payloads_that_inflate_past_the_shape_are_malformed_not_allocated() -> None:
    # A small shape with data that would inflate to 8 MiB: the header says so (refused
    # before decompressing), or without a header decompression stops at the shape's size.
    reject(array_frame(zstd_map(bytes(8 * MB), [4096])), MalformedFrame, match="declares")
    headless = zstd_map(bytes(8 * MB), [4096], write_content_size=False)
    reject(array_frame(headless), MalformedFrame, match="corrupt")
    lz4_map = {**headless, "codec": "lz4",
               "data": lz4.block.compress(bytes(8 * MB), store_size=False)}
    reject(array_frame(lz4_map), MalformedFrame, match="corrupt")
    two = zstd_map(bytes(4096), [4096])
    reject(array_frame({**two, "data": two["data"] * 2}), MalformedFrame, match="corrupt")


def test_compressed_bools_hold_only_zeros_and_ones() -> None:
    data = zstandard.ZstdCompressor().compress(b"\x00\x01" * 4000 + b"\x02")
    bad = {"dtype": "bool", "shape": [8001], "codec": "zstd", "data": data}
    reject(array_frame(bad), MalformedFrame, match="bool")


# ---------------------------------------------------------------- fuzz

FUZZ_FRAMES = [encode(image_fragment(6), 1 * MB, codec) for codec in CODECS]
FUZZ_MAPS = [msgpack.unpackb(f)["arrays"]["obs"] for f in FUZZ_FRAMES]


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, op, chunk in edits:
        pos %= max(len(out), 1)
        if op == 0:
            out[pos:pos + len(chunk)] = chunk  # overwrite
        elif op == 1:
            out[pos:pos] = chunk  # insert
        else:
            del out[pos:pos + len(chunk)]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 2),
                           st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_refuses(frame: bytes) -> None:
    try:
        msg = decode(frame, 1 * MB)
    except WireError:
        return
    assert type(msg) in KINDS.values()


@FUZZ
@given(which=st.integers(0, len(FUZZ_FRAMES) - 1), edits=EDITS)
def test_fuzzed_compressed_frames_decode_or_raise_a_wire_error(
        which: int, edits: list[tuple[int, int, bytes]]) -> None:
    decodes_or_refuses(mutate(FUZZ_FRAMES[which], edits))


@FUZZ
@given(which=st.integers(0, len(FUZZ_MAPS) - 1), edits=EDITS,
       shape=st.one_of(st.none(), st.lists(st.integers(0, 1 << 40), max_size=4)),
       codec=st.sampled_from(["lz4", "zstd", "zstd", "lz4", "x"]))
def test_fuzzed_compressed_payloads_decode_or_raise_a_wire_error(
        which: int, edits: list[tuple[int, int, bytes]], shape: list[int] | None,
        codec: str) -> None:
    good = FUZZ_MAPS[which]
    array = {**good, "codec": codec, "data": mutate(good["data"], edits)}
    if shape is not None:
        array["shape"] = shape
    decodes_or_refuses(tamper(FUZZ_FRAMES[which], arrays={"obs": array}))
