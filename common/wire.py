"""The wire schema: every message that crosses a process boundary, and its msgpack codec.

The only module that imports msgpack; nothing on the wire is ever pickled. A frame is one
map ``{"v": SCHEMA_VERSION, "k": KIND, <field>: <value>, ...}`` with exactly the fields of
its kind, in declaration order (``return_`` travels as ``"return"``). An array travels as
``{"dtype": name, "shape": [...], "data": raw bytes}``: C order, little-endian, a dtype from
:data:`DTYPES`; a large one may travel compressed, as ``{"dtype", "shape", "codec": "lz4" or
"zstd", "data": compressed bytes}`` (see :mod:`common.wire_codec`). Decoding never runs code
and never trusts a size the peer states. Any change to a message bumps
:data:`SCHEMA_VERSION`; receivers reject other versions, never guess.

A sender calls ``encode(msg, limit, codec)``; a receiver calls ``decode(frame, limit)``
inside ``except WireError as exc``, counts ``exc.reason``, dead-letters the frame and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, get_args

import msgpack
import numpy as np

from common.errors import FrameTooLarge, MalformedFrame, SchemaVersionError, UnknownKind
from common.keys import validate_id
from common.wire_codec import RAW, FrameArrays, WireCodec
from common.wire_fields import DTYPES, Field, schema_of

__all__ = ["DTYPES", "KINDS", "SCHEMA_VERSION", "Message", "decode", "encode"]

SCHEMA_VERSION = 4
"""Bumped on every change to any message or array encoding (2: compressed arrays; 3: the
learner's incarnation on its requests; 4: the r a segment was cut with); both sides of a
hop must agree."""
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Frames above this are rejected before unpacking (128 steps of 3×64×112 frames: 2.8 MB)."""

# ---------------------------------------------------------------- message kinds
# Each kind validates itself in __post_init__ (ValueError), so a message that was built or
# decoded is always consistent; decode() reports a failed check as MalformedFrame.


@dataclass(frozen=True, eq=False)
class Fragment:
    """A contiguous run of steps of one episode, as an actor publishes it."""

    KIND: ClassVar[str] = "fragment"
    run: str  #: the run id
    actor: str  #: id of the publishing actor
    episode: str  #: the episode id, unique within the run
    index: int  #: the fragment's number within the episode, from 0
    first_step: int  #: the episode step of the fragment's first row
    #: one row per step, all of one length, e.g. ``observations`` uint8 ``[n, 3, 64, 112]``,
    #: ``actions`` int64 ``[n]``, ``rewards`` float32 ``[n]``, ``dones`` bool ``[n]``
    arrays: dict[str, np.ndarray]
    policy_version: int  #: version of the policy weights that acted (0 without a policy)
    final: bool  #: whether this is the episode's last fragment

    def __post_init__(self) -> None:
        _check(self, ids=("run", "actor", "episode"),
               counts=("index", "first_step", "policy_version"))
        _one_row_per_step(self, "arrays")


@dataclass(frozen=True)
class EpisodeDone:
    """The "episode complete" entry an actor adds to the episodes stream."""

    KIND: ClassVar[str] = "episode_done"
    episode: str  #: the episode id
    actor: str  #: id of the actor that played it
    length: int  #: number of steps (>= 1)
    return_: float  #: the undiscounted sum of rewards
    policy_version: int  #: version of the policy weights that acted (0 without a policy)
    fragments: int  #: how many fragments hold the episode (>= 1)

    def __post_init__(self) -> None:
        _check(self, ids=("episode", "actor"), counts=("policy_version",))
        if self.length < 1 or self.fragments < 1:
            raise ValueError(f"EpisodeDone needs length and fragments >= 1, got {self.length} "
                             f"and {self.fragments}")


@dataclass(frozen=True, eq=False)
class Mark:
    """The scorer's output for one episode."""

    KIND: ClassVar[str] = "mark"
    episode: str  #: the episode id
    surprise: np.ndarray  #: ``[T]`` float32 surprise of every step
    #: ``[T, K]`` int32/int64: for every step t, the K steps k >= t it learns to predict
    targets: np.ndarray
    scorer_version: int  #: version of the detector weights that scored the episode

    def __post_init__(self) -> None:
        _check(self, ids=("episode",), counts=("scorer_version",))
        s, t = self.surprise, self.targets
        if (s.dtype != np.float32 or s.ndim != 1 or t.dtype not in (np.int32, np.int64)
                or t.ndim != 2 or len(t) != len(s)):
            raise ValueError(f"Mark needs surprise float32 [T] and targets int32/int64 [T, K], "
                             f"got {s.dtype} {s.shape} and {t.dtype} {t.shape}")
        # Checked here so that a bad peer cannot plant an IndexError deep in segment batching.
        if t.size and (t.min() < 0 or t.max() >= len(s)):
            raise ValueError(f"Mark.targets must index steps 0..{len(s) - 1}")


@dataclass(frozen=True)
class SegmentRequest:
    """A learner's self-contained request for the next segment of one lane."""

    KIND: ClassVar[str] = "segment_request"
    lane: int  #: the lane, 0..B-1
    episode: str | None  #: the lane's episode, or None for "a new episode" (then offset 0)
    offset: int  #: the episode step the requested segment starts at
    credit: int  #: how many more segments the learner is ready to receive
    acks: list[str]  #: ids of the segments trained on since the lane's last request
    #: the learner process's random id: a new one releases what its predecessor held
    incarnation: str = ""

    def __post_init__(self) -> None:
        _check(self, ids=(() if self.episode is None else ("episode",))
               + (("incarnation",) if self.incarnation else ()),
               counts=("lane", "offset", "credit"))
        if self.episode is None and self.offset != 0:
            raise ValueError("SegmentRequest for a new episode must have offset 0")
        for ack in self.acks:
            validate_id(ack, "SegmentRequest.acks item")


@dataclass(frozen=True, eq=False)
class Segment:
    """``r`` consecutive steps of one episode plus the marked targets of its steps."""

    KIND: ClassVar[str] = "segment"
    segment_id: str  #: the id the learner acks once it has trained on the segment
    lane: int  #: the lane that asked for it
    episode: str  #: the episode id
    offset: int  #: the episode step of the segment's first row
    arrays: dict[str, np.ndarray]  #: the segment's steps, one row per step
    #: the targets of those steps, e.g. ``indices`` ``[r, K]`` and the target steps' features
    targets: dict[str, np.ndarray]
    policy_version: int  #: version of the policy weights that played the episode
    #: r, the scorer's ``memup.rollout``: a learner trained with another r refuses the segment
    rollout: int

    def __post_init__(self) -> None:
        _check(self, ids=("segment_id", "episode"), counts=("lane", "offset", "policy_version"))
        _one_row_per_step(self, "arrays")
        if self.rollout < 1:
            raise ValueError(f"Segment.rollout must be >= 1, got {self.rollout}")


@dataclass(frozen=True)
class RolloutRequest:
    """A learner's request for on-policy episodes for PPO (phase II and joint mode)."""

    KIND: ClassVar[str] = "rollout_request"
    credit: int  #: how many more episodes the learner is ready to receive
    acks: list[str]  #: ids of the rollouts trained on since the last request
    policy_version: int  #: the learner's current policy version
    max_lag: int  #: serve only episodes played by a policy at most this many versions older
    #: the learner process's random id: a new one releases what its predecessor held
    incarnation: str = ""

    def __post_init__(self) -> None:
        _check(self, ids=("incarnation",) if self.incarnation else (),
               counts=("credit", "policy_version", "max_lag"))
        for ack in self.acks:
            validate_id(ack, "RolloutRequest.acks item")


@dataclass(frozen=True, eq=False)
class Rollout:
    """One complete on-policy episode as the actor played it (steps, actions, log-probs)."""

    KIND: ClassVar[str] = "rollout"
    rollout_id: str  #: the id the learner acks once it has trained on the episode
    episode: str  #: the episode id
    arrays: dict[str, np.ndarray]  #: the episode's steps, one row per step
    policy_version: int  #: version of the policy weights that played the episode

    def __post_init__(self) -> None:
        _check(self, ids=("rollout_id", "episode"), counts=("policy_version",))
        _one_row_per_step(self, "arrays")


Message = Fragment | EpisodeDone | Mark | SegmentRequest | Segment | RolloutRequest | Rollout
KINDS: dict[str, type[Message]] = {cls.KIND: cls for cls in get_args(Message)}
"""Every message class by its ``KIND``."""


def _check(msg: object, ids: tuple[str, ...], counts: tuple[str, ...] = ()) -> None:
    """Validates the id fields (see :func:`common.keys.validate_id`) and the counts (>= 0)."""
    for name in ids:
        validate_id(getattr(msg, name), f"{type(msg).__name__}.{name}")
    for name in counts:
        if getattr(msg, name) < 0:
            raise ValueError(f"{type(msg).__name__}.{name} must be >= 0, got {getattr(msg, name)}")


def _one_row_per_step(msg: object, name: str) -> None:
    shapes = {key: np.shape(a) for key, a in getattr(msg, name).items()}
    if len({s[:1] for s in shapes.values()}) > 1 or any(not s for s in shapes.values()):
        raise ValueError(f"{type(msg).__name__}.{name} must hold one row per step, all of one "
                         f"length; got shapes {str(shapes)[:200]}")


_SCHEMAS: dict[type, tuple[Field, ...]] = {cls: schema_of(cls) for cls in KINDS.values()}


# ---------------------------------------------------------------- encode / decode


def encode(msg: Message, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
           codec: WireCodec = RAW) -> bytes:
    """Encodes one message as a frame.

    Args:
        msg: any message kind of this module.
        max_frame_bytes: refuse to produce a frame that receivers with this limit would reject.
        codec: how large arrays are compressed (default: all raw).

    Returns:
        The frame.

    Raises:
        TypeError: ``msg`` is not a message, or a field has the wrong type.
        DisallowedDtype: an array's dtype is not in :data:`DTYPES`.
        FrameTooLarge: the frame exceeds ``max_frame_bytes``.
    """
    fields = _SCHEMAS.get(type(msg))
    if fields is None:
        raise TypeError(f"not a wire message: {type(msg).__name__}")
    body: dict[str, Any] = {"v": SCHEMA_VERSION, "k": msg.KIND}
    arrays = FrameArrays(max_frame_bytes, codec)
    for f in fields:
        body[f.wire] = f.convert(getattr(msg, f.name), f"{msg.KIND}.{f.wire}", False, arrays)
    frame = msgpack.packb(body, use_bin_type=True)
    if len(frame) > max_frame_bytes:
        raise FrameTooLarge(f"{msg.KIND} frame of {len(frame)} bytes exceeds the limit of "
                            f"{max_frame_bytes}: send less per message or raise both limits")
    return frame


def decode(frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decodes one frame from a peer, trusting nothing in it.

    Arrays come back read-only and without a per-element copy: views (``np.frombuffer``)
    over the bytes msgpack unpacked, or over the bytes a compressed one decompressed to.

    Args:
        frame: the frame (``bytes``, ``bytearray`` or ``memoryview``).
        max_frame_bytes: frames larger than this are rejected before unpacking.

    Returns:
        The message.

    Raises:
        FrameTooLarge: the frame is larger than ``max_frame_bytes``.
        MalformedFrame: not msgpack, not a map, a field missing, unknown or of the wrong type,
            array sizes that do not add up, values the message class rejects, or compressed
            arrays that are corrupt, of an unknown codec, or larger than the limit allows.
        SchemaVersionError: the frame's schema version is not :data:`SCHEMA_VERSION`.
        UnknownKind: the frame's kind is none of :data:`KINDS`.
        DisallowedDtype: an array's dtype is not in :data:`DTYPES`.
    """
    size = memoryview(frame).nbytes
    if size > max_frame_bytes:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {max_frame_bytes} bytes")
    try:
        # msgpack allocates a container of the declared length before reading its items, so
        # every length is bounded by what the frame could actually hold (>= 1 byte per item).
        body = msgpack.unpackb(
            frame, raw=False, strict_map_key=True, use_list=True, max_bin_len=size,
            max_str_len=size, max_array_len=size, max_map_len=size // 2, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises ValueError, FormatError, StackError, ... on bad input
        raise MalformedFrame(f"not msgpack: {type(exc).__name__}: {str(exc)[:100]}") from exc
    if type(body) is not dict:
        raise MalformedFrame(f"frame is a msgpack {type(body).__name__}, not a map")
    version = body.pop("v", None)
    if type(version) is not int:
        raise MalformedFrame("frame has no integer schema version 'v'")
    if version != SCHEMA_VERSION:
        older = "this process" if version > SCHEMA_VERSION else "the sender"
        raise SchemaVersionError(f"frame has wire schema version {version}, this process speaks "
                                 f"{SCHEMA_VERSION}: upgrade {older} so both sides match")
    kind = body.pop("k", None)
    if type(kind) is not str:
        raise MalformedFrame("frame has no string kind 'k'")
    cls = KINDS.get(kind)
    if cls is None:
        raise UnknownKind(f"unknown message kind {kind[:40]!r}; known: {sorted(KINDS)}")
    values = {}
    arrays = FrameArrays(max_frame_bytes)  # compressed arrays inflate to at most the limit
    for f in _SCHEMAS[cls]:
        if f.wire not in body:
            raise MalformedFrame(f"{kind} frame lacks field {f.wire!r}")
        values[f.name] = f.convert(body.pop(f.wire), f"{kind}.{f.wire}", True, arrays)
    if body:
        raise MalformedFrame(f"{kind} frame has unknown fields {[repr(k)[:40] for k in body][:5]}")
    try:
        return cls(**values)
    except ValueError as exc:  # the message's own validation: ids, ranges, shapes
        raise MalformedFrame(f"{kind}: {exc}") from exc
