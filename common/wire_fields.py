"""How each field of a wire message is checked and converted, to the wire and from a peer.

A message kind is a frozen dataclass whose annotations say what each field holds: a scalar
(``str``, ``int``, ``float``, ``bool``), a numpy array, or one of those in a container
(optional, list, or map with string keys). :func:`schema_of` turns the annotations into
:class:`Field` converters, so a field is declared exactly once, in ``common/wire.py``.
This module never touches msgpack: it works on the plain values msgpack packs and unpacks.
An array's payload is packed and unpacked by the frame's
:class:`~common.wire_codec.FrameArrays` (raw, or compressed with a ``"codec"`` entry).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, get_type_hints

import numpy as np

from common.errors import DisallowedDtype, MalformedFrame
from common.wire_codec import FrameArrays

_DTYPE_NAMES = "uint8 int8 int16 int32 int64 float16 float32 float64 bool".split()
DTYPES: dict[str, np.dtype] = {name: np.dtype(name).newbyteorder("<") for name in _DTYPE_NAMES}
"""The array dtypes allowed on the wire, by wire name, as the little-endian dtype they decode to."""
MAX_NDIM = 32

# The same rules on both sides: a broken one is a TypeError when encoding (a bug here) and a
# MalformedFrame when decoding (a bad peer).

_SCALARS: dict[type, tuple[type, ...]] = {
    str: (str,),
    int: (int,),  # exact types: a bool never passes for an int
    float: (float, int),  # peers in other languages may write 1.0 as 1
    bool: (bool,),
}


_ARRAY_KEYS = ({"dtype", "shape", "data"}, {"dtype", "shape", "codec", "data"})


def _enc_array(value: Any, where: str, arrays: FrameArrays) -> dict[str, Any]:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where} must be a numpy array, got {type(value).__name__}")
    wire_dtype = DTYPES.get(value.dtype.name)
    if wire_dtype is None or value.dtype.kind not in "biuf":
        raise DisallowedDtype(f"{where}: dtype {value.dtype} is not allowed on the wire; "
                              f"use one of {sorted(DTYPES)}")
    # No copy when the array already is little-endian and C-contiguous, the common case.
    value = np.asarray(value, dtype=wire_dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
    return {"dtype": value.dtype.name, "shape": list(value.shape), **arrays.pack(value.data)}


def _dec_array(value: Any, where: str, arrays: FrameArrays) -> np.ndarray:
    if type(value) is not dict or value.keys() not in _ARRAY_KEYS:
        raise MalformedFrame(f"{where}: expected an array map with dtype, shape and data "
                             f"(and optionally codec)")
    name, shape, data = value["dtype"], value["shape"], value["data"]
    if type(name) is not str or type(shape) is not list or type(data) is not bytes:
        raise MalformedFrame(f"{where}: array dtype must be str, shape a list, data bytes")
    dtype = DTYPES.get(name)
    if dtype is None:
        raise DisallowedDtype(f"{where}: dtype {name[:20]!r} is not allowed on the wire")
    if len(shape) > MAX_NDIM or any(type(d) is not int or d < 0 for d in shape):
        raise MalformedFrame(f"{where}: shape must be at most {MAX_NDIM} ints >= 0")
    count = math.prod(shape)  # Python ints: no overflow, whatever the peer claims
    if "codec" in value:  # one decompression into fresh bytes; frombuffer below views them
        data = arrays.unpack(value["codec"], data, count * dtype.itemsize, where)
    if count * dtype.itemsize != len(data):
        raise MalformedFrame(f"{where}: shape {shape} of {name} needs "
                             f"{count * dtype.itemsize} bytes, the frame has {len(data)}")
    try:
        array = np.frombuffer(data, dtype=dtype).reshape(shape)
    except (ValueError, OverflowError) as exc:  # e.g. a zero-size shape with a huge dim
        raise MalformedFrame(f"{where}: unusable shape: {exc}") from exc
    # Only bytes 0 and 1 are booleans; anything else would make comparisons misbehave.
    if dtype.kind == "b" and count and np.frombuffer(data, np.uint8).max() > 1:
        raise MalformedFrame(f"{where}: bool array holds bytes other than 0 and 1")
    return array


def _leaf(base: type, value: Any, where: str, peer: bool, arrays: FrameArrays) -> Any:
    if base is np.ndarray:
        return _dec_array(value, where, arrays) if peer else _enc_array(value, where, arrays)
    if not peer and isinstance(value, np.generic):
        value = value.item()  # numpy scalars are not msgpack types
    if type(value) not in _SCALARS[base]:
        error = MalformedFrame if peer else TypeError
        raise error(f"{where}: expected {base.__name__}, got {type(value).__name__}")
    return base(value)


@dataclass(frozen=True)
class Field:
    """One field of a message kind: ``base`` held once, optionally, in a list or in a map."""

    name: str
    wire: str
    base: type
    container: str  # "one", "optional", "list" or "map" (with str keys)

    def convert(self, value: Any, where: str, peer: bool, arrays: FrameArrays) -> Any:
        """Checks a value and converts it to the wire (``peer=False``) or from it.

        ``arrays`` packs (or unpacks) the payloads of the frame's arrays.
        """
        error = MalformedFrame if peer else TypeError
        if self.container == "list":
            if type(value) is not list and (peer or type(value) is not tuple):
                raise error(f"{where}: expected a list, got {type(value).__name__}")
            return [_leaf(self.base, v, f"{where}[{i}]", peer, arrays)
                    for i, v in enumerate(value)]
        if self.container == "map":
            if type(value) is not dict:
                raise error(f"{where}: expected a map, got {type(value).__name__}")
            return {_leaf(str, k, f"{where} key", peer, arrays):
                    _leaf(self.base, v, f"{where}[{k!r:.40}]", peer, arrays)
                    for k, v in value.items()}
        if value is None and self.container == "optional":
            return None
        return _leaf(self.base, value, where, peer, arrays)


# Annotations that hold a scalar or an array in a container, as (base, container).
_CONTAINERS: dict[object, tuple[type, str]] = {
    str | None: (str, "optional"),
    list[str]: (str, "list"),
    dict[str, np.ndarray]: (np.ndarray, "map"),
}


def schema_of(cls: type) -> tuple[Field, ...]:
    # Derived from the dataclass annotations, so a message's fields are declared exactly once.
    hints = get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        base, container = _CONTAINERS.get(hints[f.name], (hints[f.name], "one"))
        if base not in _SCALARS and base is not np.ndarray:  # a new annotation needs a codec
            raise TypeError(f"{cls.__name__}.{f.name}: no wire codec for {hints[f.name]}")
        fields.append(Field(f.name, f.name.rstrip("_"), base, container))
    return tuple(fields)
