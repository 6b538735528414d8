"""Compression of large array payloads on the wire: the codecs and each frame's byte budget.

A sender picks a :class:`WireCodec`: ``none``, ``lz4`` (an LZ4 block) or ``zstd`` at a
level. An array of at least ``min_bytes`` travels compressed when that makes it smaller;
its map then gains ``"codec": name``. A receiver needs no setting: the map names the codec,
and its dtype and shape say exactly how many bytes must come out. That size is charged to
the frame's budget (its size limit) *before* anything is decompressed, and decompression
is bounded by it, so a small frame can never inflate into a large allocation.

There are no checksums: a flipped bit in compressed data is as undetectable as one in raw
data (TCP and Redis carry frames intact, and a hostile peer can send wrong raw bytes
anyway). What matters is that bad compressed data is only ever a :class:`MalformedFrame`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lz4.block
import zstandard

from common.errors import MalformedFrame

if TYPE_CHECKING:
    from common.config import WireConfig

__all__ = ["CODECS", "RAW", "ZSTD_LEVELS", "FrameArrays", "WireCodec"]

CODECS = ("none", "lz4", "zstd")
"""The codec names a sender may choose (``none``: every array raw)."""
ZSTD_LEVELS = range(-7, 20)
"""zstd levels a sender may use: the ultra levels 20-22 need windows receivers refuse."""
MAX_ZSTD_WINDOW = 1 << 23
"""The largest zstd window a receiver accepts: what levels <= 19 use at most."""


@dataclass(frozen=True)
class WireCodec:
    """How a sender compresses the arrays of the frames it encodes.

    Args:
        name: ``none``, ``lz4`` or ``zstd``.
        level: the zstd level (-7..19; higher is smaller and slower); lz4 ignores it.
        min_bytes: arrays smaller than this always travel raw (not worth a call).
    """

    name: str = "none"
    level: int = 1
    min_bytes: int = 4096

    def __post_init__(self) -> None:
        if self.name not in CODECS:
            raise ValueError(f"unknown wire codec {self.name!r}; use one of {list(CODECS)}")
        if self.name == "zstd" and self.level not in ZSTD_LEVELS:
            raise ValueError(f"zstd level {self.level} outside {ZSTD_LEVELS.start}.."
                             f"{ZSTD_LEVELS.stop - 1}")
        if self.min_bytes < 0:
            raise ValueError(f"min_bytes must be >= 0, got {self.min_bytes}")

    @classmethod
    def from_config(cls, wire: WireConfig) -> WireCodec:
        """The codec of a run's ``[wire]`` section."""
        return cls(wire.codec, wire.level, wire.min_bytes)

    def compress(self, data: memoryview) -> bytes | None:
        """``data`` compressed, or None when it should travel raw (small, or no gain)."""
        if self.name == "none" or data.nbytes < max(self.min_bytes, 1):
            return None
        data = data.cast("B")  # one flat run of bytes (the array is C-contiguous)
        if self.name == "lz4":
            packed = lz4.block.compress(data, store_size=False)  # the size is in the shape
        else:
            packed = _zstd_compressor(self.level).compress(data)
        return packed if len(packed) < data.nbytes else None


RAW = WireCodec()
"""Every array raw: the default of :func:`common.wire.encode`."""

# zstd (de)compressor objects are not thread-safe, and building one per array would cost
# more than compressing a small one: each thread keeps its own, reused.
_local = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)  # writes the content size
    return cache[level]


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_local, "decompressor"):
        _local.decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
    return _local.decompressor


def _inflate_zstd(payload: bytes, size: int) -> bytes:
    # With a content size in the frame header zstd allocates that and ignores
    # max_output_size, so the header must agree with the shape before decompressing.
    declared = zstandard.frame_content_size(payload)
    if declared not in (size, zstandard.CONTENTSIZE_UNKNOWN):
        raise ValueError(f"zstd frame declares {declared} bytes")
    return _zstd_decompressor().decompress(payload, max_output_size=size,
                                           allow_extra_data=False)


def _inflate_lz4(payload: bytes, size: int) -> bytes:
    return lz4.block.decompress(payload, uncompressed_size=size)


_INFLATE = {"lz4": _inflate_lz4, "zstd": _inflate_zstd}


class FrameArrays:
    """The array payloads of one frame, within its budget of decompressed bytes.

    One per :func:`common.wire.encode` or :func:`common.wire.decode` call. The arrays of a
    frame that travel compressed add up to at most ``limit`` bytes once decompressed, the
    same bound the frame itself has; a sender whose array would go over sends it raw, so
    that the frame limit applies to it as to any raw array.

    Args:
        limit: the frame size limit, also the budget of decompressed bytes.
        codec: how :meth:`pack` compresses (decoding needs no setting).
    """

    def __init__(self, limit: int, codec: WireCodec = RAW) -> None:
        self.limit, self.left, self.codec = limit, limit, codec

    def pack(self, data: memoryview) -> dict[str, Any]:
        """The array map's payload entries: ``{"data": raw}`` or ``{"codec", "data"}``."""
        if data.nbytes <= self.left:
            packed = self.codec.compress(data)
            if packed is not None:
                self.left -= data.nbytes
                return {"codec": self.codec.name, "data": packed}
        return {"data": data}

    def unpack(self, codec: Any, payload: bytes, size: int, where: str) -> bytes:
        """Decompresses a payload that must yield exactly ``size`` bytes.

        Args:
            codec: the map's ``codec`` value, as the peer sent it.
            payload: the compressed bytes.
            size: the bytes the map's dtype and shape need.
            where: the field, for messages.

        Returns:
            The ``size`` decompressed bytes.

        Raises:
            MalformedFrame: an unknown codec, a size beyond the frame's budget (checked
                before decompressing), or data that does not decompress to ``size`` bytes.
        """
        inflate = _INFLATE.get(codec) if type(codec) is str else None
        if inflate is None:
            raise MalformedFrame(f"{where}: unknown codec {str(codec)[:20]!r}; known: "
                                 f"{sorted(_INFLATE)}")
        if size > self.left:
            raise MalformedFrame(
                f"{where}: compressed array declares {size} bytes, beyond the {self.left} "
                f"left of the frame's limit of {self.limit} (a decompression bomb?)")
        self.left -= size
        try:
            data = inflate(payload, size)
        except Exception as exc:  # zstd and lz4 raise their own errors on corrupt data
            raise MalformedFrame(f"{where}: corrupt {codec} data: {type(exc).__name__}: "
                                 f"{str(exc)[:100]}") from exc
        if len(data) != size:
            raise MalformedFrame(f"{where}: {codec} data decompressed to {len(data)} bytes, "
                                 f"the shape needs {size}")
        return data
