"""Measures the bytes autograd stores for backward: the paper's "intermediate data"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class SavedBytes:
    """Unique storages saved for backward inside a :func:`count_saved_bytes` block."""

    total: int = 0
    parameters: int = 0
    _seen: set[int] = field(default_factory=set)
    _params: set[int] = field(default_factory=set)

    @property
    def activations(self) -> int:
        return self.total - self.parameters


@contextmanager
def count_saved_bytes(params: list[torch.Tensor] | None = None) -> Iterator[SavedBytes]:
    """Counts each storage autograd saves once (by data pointer), splitting out parameters.

    Args:
        params: parameters whose storages are reported separately as ``parameters``.
    """
    result = SavedBytes()
    result._params = {p.untyped_storage().data_ptr() for p in (params or [])}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in result._seen:
            result._seen.add(ptr)
            result.total += storage.nbytes()
            if ptr in result._params:
                result.parameters += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
