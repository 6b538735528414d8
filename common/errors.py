"""The ways a frame from a peer can be wrong, each with the reason a receiver counts it under.

A receiver never crashes on a bad frame: it catches :class:`WireError`, increments a
counter labelled with ``exc.reason``, logs (rate-limited) and moves the frame to the
dead-letter stream. ``reason`` is a short constant ``[a-z_]`` string, safe as a
Prometheus label value, and says nothing about the frame itself (no unbounded label sets).
"""

from __future__ import annotations

from typing import ClassVar


class WireError(ValueError):
    """A frame that this process refuses to decode (or a message it refuses to encode).

    Attributes:
        reason: the metric label for this kind of rejection.
    """

    reason: ClassVar[str] = "invalid"


class MalformedFrame(WireError):
    """Not msgpack, not a map, a field missing or of the wrong type, or inconsistent sizes."""

    reason: ClassVar[str] = "malformed"


class FrameTooLarge(WireError):
    """The frame is above the configured size limit; it was rejected before unpacking."""

    reason: ClassVar[str] = "too_large"


class SchemaVersionError(WireError):
    """The peer speaks another schema version: a deployment error, fixed by upgrading a side."""

    reason: ClassVar[str] = "schema_version"


class DisallowedDtype(WireError):
    """An array whose dtype is not on the wire allow-list (object, complex, strings, ...)."""

    reason: ClassVar[str] = "dtype"


class UnknownKind(WireError):
    """A well-formed frame of the right version whose message kind this process does not know."""

    reason: ClassVar[str] = "unknown_kind"
