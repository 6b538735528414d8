"""Model weights shared through Redis: the learner publishes, actors and scorers poll.

One hash per weights name (:func:`common.keys.weights_key`) holds the newest version
only: ``version`` (ASCII int), ``sha256`` (hex digest of ``data``), ``data`` (safetensors
bytes, which load without running code, unlike pickles) and ``nbytes``. All fields are
written in one MULTI/EXEC and read in one HMGET, so a reader never pairs a version with
another version's bytes. Pollers call :func:`weights_version` (a few bytes) and fetch
the megabytes only when it moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import redis
import safetensors.torch
import torch

from common.keys import weights_key


class WeightsError(ValueError):
    """Published weights that cannot be used: corrupted, incomplete or not safetensors."""


def _serialize(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    tensors = {}
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict must map str to torch.Tensor, got {name!r}: "
                            f"{type(tensor).__name__}")
        # A copy: safetensors refuses tensors sharing storage (tied weights, views).
        tensors[name] = tensor.detach().to("cpu", copy=True).contiguous()
    return safetensors.torch.save(tensors)


def _check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"weights version must be an int >= 1, got {version!r} "
                         "(0 means 'nothing published')")
    return version


def publish_weights(r: redis.Redis, run: str, name: str,
                    state_dict: Mapping[str, torch.Tensor], version: int) -> str:
    """Publishes ``state_dict`` as ``version`` of weights ``name``; returns its sha256.

    Versions only go up. Publishing the stored version again with the same tensors is a
    no-op, so a publish interrupted by a lost connection can simply be repeated.

    Raises:
        ValueError: ``version`` is lower than the stored one, or equal to it with other
            tensors (readers that have that version would never see them).
        TypeError: ``state_dict`` holds something else than tensors.
    """
    _check_version(version)
    key = weights_key(run, name)
    data = _serialize(state_dict)
    sha = hashlib.sha256(data).hexdigest()

    def write(pipe: redis.client.Pipeline) -> None:
        # WATCH (by r.transaction) makes the version check and the write one atomic step:
        # a concurrent publish of a higher version makes EXEC fail and this run again.
        stored, stored_sha = pipe.hmget(key, ["version", "sha256"])
        stored_version = int(stored) if stored is not None else 0
        if version < stored_version:
            raise ValueError(f"refusing to publish weights {name!r} version {version}: "
                             f"version {stored_version} is already published (versions "
                             "only go up; continue from the published version)")
        if version == stored_version and stored_sha is not None and stored_sha.decode() != sha:
            raise ValueError(f"weights {name!r} version {version} is already published with "
                             "other tensors: publish them under a new version")
        pipe.multi()
        pipe.hset(key, mapping={"version": str(version), "sha256": sha, "data": data,
                                "nbytes": str(len(data))})

    r.transaction(write, key)
    return sha


def weights_version(r: redis.Redis, run: str, name: str) -> int:
    """The published version of weights ``name``; 0 when none was published."""
    raw = r.hget(weights_key(run, name), "version")
    return int(raw) if raw is not None else 0


def fetch_weights(r: redis.Redis, run: str, name: str,
                  known_version: int = 0) -> tuple[int, dict[str, torch.Tensor]] | None:
    """The published weights ``name`` when newer than ``known_version``, else None.

    Returns:
        ``(version, tensors)``, tensors on the CPU; None when nothing newer is published.

    Raises:
        WeightsError: the stored bytes do not match their sha256 or are not safetensors.
    """
    key = weights_key(run, name)
    if weights_version(r, run, name) <= known_version:
        return None  # the cheap check first: do not move the bytes for nothing
    raw_version, raw_sha, data = r.hmget(key, ["version", "sha256", "data"])
    if raw_version is None or raw_sha is None or data is None:
        raise WeightsError(f"weights {key} are incomplete (a field is missing): "
                           "they were not written by publish_weights; publish them again")
    try:
        version = int(raw_version)
    except ValueError:
        raise WeightsError(f"weights {key} have a non-integer version {raw_version[:20]!r}: "
                           "publish them again") from None
    if version <= known_version:
        return None  # replaced meanwhile by a lower version: only possible by hand
    digest = hashlib.sha256(data).hexdigest()
    if digest != raw_sha.decode(errors="replace"):
        raise WeightsError(f"weights {key} version {version} are corrupted: sha256 of the "
                           f"{len(data)} stored bytes is {digest[:12]}..., the hash says "
                           f"{raw_sha[:12].decode(errors='replace')}...; publish them again")
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"weights {key} version {version} are not valid safetensors "
                           f"bytes ({exc}); publish them again") from exc
    return version, tensors
