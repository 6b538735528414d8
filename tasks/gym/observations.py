"""How a gymnasium observation space becomes what the wire carries and the memory reads.

``Box`` vectors (any shape that is not an image) travel flattened as float32; ``uint8``
images of at least :data:`MIN_IMAGE_SIDE` pixels a side travel as ``(C, H, W)`` uint8 frames
(an image task's records, :mod:`tasks.frames`); ``Discrete`` and ``MultiDiscrete``
observations as one-hot float32 vectors (one block per component); a ``Tuple`` or ``Dict`` of
those as their concatenation, text parts left out (and named). Anything else (an image
inside a tuple, say) is refused with the reason: wrap the env first (e.g.
``gymnasium.wrappers.FlattenObservation``) and name the wrapping function as
``task.env = "<module>:<callable>"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np
from gymnasium import spaces

MIN_IMAGE_SIDE = 36
"""The frame CNN (8×8 stride 4, 4×4 stride 2, 3×3) needs at least this many pixels a side;
smaller uint8 grids (e.g. MiniGrid's 7×7 view) are read as vectors."""
CHANNELS = (1, 3, 4)


class UnsupportedSpace(ValueError):
    """An observation or action space the gym task cannot carry."""


@dataclass(frozen=True)
class Observations:
    """The wire's view of one observation space: its shape, dtype and the conversion."""

    shape: tuple[int, ...]
    dtype: str
    convert: Callable[[object], np.ndarray]
    kind: str  #: "vector", "one-hot" or "image"
    dropped: tuple[str, ...] = ()  #: text parts of a Dict or Tuple, not carried


def observations(space: gymnasium.Space) -> Observations:
    """The conversion of observations of ``space``.

    Raises:
        UnsupportedSpace: ``space`` is not a Box, Discrete or MultiDiscrete space.
    """
    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)
        return Observations((n,), "float32", lambda o: _one_hot([int(o) - start], [n]),
                            "one-hot")
    if isinstance(space, spaces.MultiDiscrete):
        sizes = [int(v) for v in np.asarray(space.nvec).ravel()]
        starts = np.asarray(space.start).ravel()
        return Observations((sum(sizes),), "float32",
                            lambda o: _one_hot(np.asarray(o).ravel() - starts, sizes), "one-hot")
    if isinstance(space, spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        if space.dtype == np.uint8 and len(shape) == 3:
            chw_already = shape[0] in CHANNELS and shape[-1] not in CHANNELS
            # otherwise height, width, channels: gymnasium's usual layout
            chw = shape if chw_already else (shape[2], shape[0], shape[1])
            if min(chw[1:]) >= MIN_IMAGE_SIDE:
                return Observations(chw, "uint8", _frames if chw_already else _hwc_frames,
                                    "image")
        size = int(np.prod(shape)) if shape else 1
        return Observations((size,), "float32",
                            lambda o: np.asarray(o, np.float32).reshape(size), "vector")
    if isinstance(space, spaces.Tuple | spaces.Dict):
        named = (list(space.spaces.items()) if isinstance(space, spaces.Dict)
                 else list(enumerate(space.spaces)))
        kept = [(k, part) for k, part in named if not _text(part)]
        views = [observations(part) for _, part in kept]
        if kept and all(view.dtype == "float32" for view in views):
            keys = [k for k, _ in kept]

            def joined(o: object) -> np.ndarray:
                return np.concatenate([view.convert(o[k])  # type: ignore[index]
                                       for k, view in zip(keys, views)])

            return Observations((sum(view.shape[0] for view in views),), "float32", joined,
                                "vector", tuple(str(k) for k, part in named if _text(part)))
    raise UnsupportedSpace(
        f"observation space {space} is not supported: the gym task reads Box, Discrete and "
        "MultiDiscrete observations, and Tuples or Dicts of non-image ones (wrap the env, "
        "e.g. with gymnasium.wrappers.FlattenObservation, and name that function as task.env = "
        "\"<module>:<callable>\")")


def _text(space: gymnasium.Space) -> bool:
    """A space of strings (e.g. an instruction that never changes within a task)."""
    return isinstance(space, spaces.Text) or isinstance(space.sample(), str)


def _frames(o: object) -> np.ndarray:
    return np.asarray(o, np.uint8)


def _hwc_frames(o: object) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(o, np.uint8).transpose(2, 0, 1))


def _one_hot(values: np.ndarray | list[int], sizes: list[int]) -> np.ndarray:
    out = np.zeros(sum(sizes), np.float32)
    offset = 0
    for value, size in zip(values, sizes):
        if not 0 <= int(value) < size:
            raise ValueError(f"observation {int(value)} outside 0..{size - 1}")
        out[offset + int(value)] = 1.0
        offset += size
    return out


class WireObservations(gymnasium.Wrapper):
    """An env whose observations are :func:`observations`' conversion of its own, and whose
    actions ``0..n-1`` are its ``Discrete`` actions ``start..start+n-1``."""

    def __init__(self, env: gymnasium.Env, view: Observations, action_start: int) -> None:
        super().__init__(env)
        self.view = view
        self.action_start = action_start
        dtype = np.dtype(view.dtype)
        low, high = (0, 255) if dtype == np.uint8 else (-np.inf, np.inf)
        self.observation_space = spaces.Box(low, high, view.shape, dtype)
        self.action_space = spaces.Discrete(int(env.action_space.n))  # type: ignore[attr-defined]

    def reset(self, **kwargs):  # type: ignore[no-untyped-def, override]
        obs, info = self.env.reset(**kwargs)
        return self.view.convert(obs), info

    def step(self, action):  # type: ignore[no-untyped-def, override]
        obs, reward, terminated, truncated, info = self.env.step(int(action) + self.action_start)
        return self.view.convert(obs), float(reward), terminated, truncated, info
