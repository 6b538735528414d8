"""A minimal PWAD writer and reader: named lumps in, WAD bytes out.

Layout (little-endian): a 12-byte header ``"PWAD"``, lump count (int32), directory offset
(int32); then the lump data; then the directory, 16 bytes per lump: data offset (int32),
size (int32), name (8 bytes, ASCII, NUL-padded). Marker lumps such as ``MAP01`` and
``ENDMAP`` are empty (size 0).
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

HEADER = struct.Struct("<4sii")
ENTRY = struct.Struct("<ii8s")
NAME_LEN = 8


def _name_bytes(name: str) -> bytes:
    """The 8-byte directory name; rejects what the engine would misread."""
    raw = name.encode("ascii")
    if not raw or len(raw) > NAME_LEN or name != name.upper():
        raise ValueError(f"lump name must be 1..8 upper-case ASCII characters, got {name!r}")
    return raw.ljust(NAME_LEN, b"\0")


def pwad_bytes(lumps: list[tuple[str, bytes]]) -> bytes:
    """The PWAD holding ``lumps`` (name, data) in the given order."""
    data = bytearray(HEADER.size)
    directory = bytearray()
    for name, payload in lumps:
        directory += ENTRY.pack(len(data) if payload else 0, len(payload), _name_bytes(name))
        data += payload
    HEADER.pack_into(data, 0, b"PWAD", len(lumps), len(data))
    return bytes(data + directory)


def read_pwad(blob: bytes) -> list[tuple[str, bytes]]:
    """Parses a WAD back into (name, data) pairs; raises ``ValueError`` if malformed."""
    if len(blob) < HEADER.size:
        raise ValueError("shorter than a WAD header")
    magic, count, offset = HEADER.unpack_from(blob, 0)
    if magic not in (b"PWAD", b"IWAD") or count < 0 or offset + count * ENTRY.size > len(blob):
        raise ValueError(f"bad WAD header: {magic!r}, {count} lumps at {offset}")
    lumps = []
    for i in range(count):
        start, size, raw = ENTRY.unpack_from(blob, offset + i * ENTRY.size)
        if size < 0 or start + size > len(blob):
            raise ValueError(f"lump {i} runs past the end of the file")
        lumps.append((raw.rstrip(b"\0").decode("ascii"), blob[start:start + size]))
    return lumps


def write_atomic(path: Path, blob: bytes) -> None:
    """Writes ``blob`` to ``path`` via a temp file in the same directory and a rename, so a
    concurrent reader (another actor building the same cache entry) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
