"""Episodes that are never held whole: steps generated block by block, targets as peaks.

At T = 100,000 a T-Maze episode is 6.8 MB of arrays and a run holds 128 of them (64 lanes,
64 marked and waiting); at T = 1,000,000 that is 8.7 GB. A lazy episode keeps only the few
numbers that regenerate it (its ``spec``) and a small cache of recent blocks, so memory per
episode is constant in T. Its top-1 + current-step targets are kept the same way: the steps
that are the maximum of their suffix (``peaks``, typically a handful), from which the top-1
future step of any t is one ``searchsorted`` away. :class:`SuffixPeaks` finds them while the
detector streams its surprise chunk by chunk, so the surprise is never held whole either.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from memup.episode import Episode

Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, queries, labels of one block


class BlockCache:
    """The last ``keep`` blocks an episode generated (a lane reads its slice's block and its
    targets' block, usually the last one, over and over)."""

    def __init__(self, make: Callable[[int], Block], keep: int = 3) -> None:
        self.make = make
        self.keep = keep
        self.blocks: OrderedDict[int, Block] = OrderedDict()

    def get(self, j: int) -> Block:
        """Block ``j``, generated when it is not cached."""
        if j in self.blocks:
            self.blocks.move_to_end(j)
            return self.blocks[j]
        block = self.make(j)
        self.blocks[j] = block
        if len(self.blocks) > self.keep:
            self.blocks.popitem(last=False)
        return block


class BlockArray:
    """A read-only ``[T, ...]`` array whose rows are generated block by block on access.

    Supports what the core reads of an episode: ``len``, ``shape``, ``dtype``, slices with
    step 1 and integer-array (or integer) indexing; each returns a fresh ``np.ndarray``.
    """

    def __init__(self, cache: BlockCache, part: int, length: int, block: int,
                 tail: tuple[int, ...], dtype: np.dtype) -> None:
        self.cache, self.part, self.length, self.block = cache, part, length, block
        self.shape = (length, *tail)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: slice | int | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.length)
            if step != 1:
                raise IndexError("BlockArray slices need step 1")
            return self._range(start, max(start, stop))
        idx = np.asarray(key, dtype=np.int64)
        if idx.ndim == 0:
            return self._gather(idx.reshape(1))[0]
        return self._gather(idx.reshape(-1)).reshape(*idx.shape, *self.shape[1:])

    def _range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        at = start
        while at < stop:
            j = at // self.block
            rows = self.cache.get(j)[self.part]
            end = min(stop, (j + 1) * self.block)
            out[at - start:end - start] = rows[at - j * self.block:end - j * self.block]
            at = end
        return out

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        if idx.size and (idx.min() < -self.length or idx.max() >= self.length):
            raise IndexError(f"index out of range for a lazy array of {self.length} rows")
        idx = np.where(idx < 0, idx + self.length, idx)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        blocks = idx // self.block
        for j in np.unique(blocks):
            sel = blocks == j
            out[sel] = self.cache.get(int(j))[self.part][idx[sel] - int(j) * self.block]
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """The whole array (tests and small episodes only: this is what laziness avoids)."""
        whole = self._range(0, self.length)
        return whole if dtype is None else whole.astype(dtype)


@dataclass
class LazyEpisode(Episode):
    """An :class:`Episode` whose arrays are :class:`BlockArray` views of a generator.

    Attributes:
        spec: int64 words that regenerate the episode exactly (what checkpoints store).
    """

    spec: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def state(self) -> dict[str, torch.Tensor]:
        """Spec and, once marked, the target peaks: everything a checkpoint needs."""
        state = {"spec": torch.from_numpy(np.asarray(self.spec, np.int64).copy())}
        targets = self.extras.get("targets")
        if isinstance(targets, TopOneTargets):
            state["peaks"] = torch.from_numpy(targets.peaks.copy())
            state["current"] = torch.tensor(int(targets.current))
        return state


def lazy_episode_from_state(state: dict[str, torch.Tensor],
                            make: Callable[[np.ndarray], LazyEpisode]) -> LazyEpisode:
    """Rebuilds a :meth:`LazyEpisode.state` with the generator ``make`` (spec → episode)."""
    episode = make(state["spec"].numpy().copy())
    if "peaks" in state:
        episode.extras["targets"] = TopOneTargets(state["peaks"].numpy().copy(), len(episode),
                                                  bool(int(state["current"])))
    return episode


class TopOneTargets:
    """``[T, 1 (+1)]`` targets of every step: its top-1 future step (+ itself), from peaks.

    ``peaks`` are the steps whose surprise beats every later step's (ascending in step,
    strictly descending in surprise); the top-1 step over k ≥ t is the first peak ≥ t, which
    is exactly :func:`memup.targets.top_k_future` with K = 1 (later step on ties).
    """

    def __init__(self, peaks: np.ndarray, length: int, current: bool = True) -> None:
        self.peaks = np.asarray(peaks, dtype=np.int64)
        if len(self.peaks) == 0 or self.peaks[-1] != length - 1:
            raise ValueError("the last step is always a peak of its own suffix")
        self.length = length
        self.current = current
        self.shape = (length, 1 + int(current))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: np.ndarray | slice) -> np.ndarray:
        steps = (np.arange(self.length)[key] if isinstance(key, slice)
                 else np.asarray(key, dtype=np.int64))
        top = self.peaks[np.searchsorted(self.peaks, steps, side="left")]
        return np.stack([top, steps], axis=-1) if self.current else top[..., None]


class SuffixPeaks:
    """Keeps the suffix-maximum steps of a score stream fed chunk by chunk (O(peaks) memory).

    A new step removes every kept step whose score it reaches (it is later, so it wins every
    suffix they won, ties included), then joins; the kept scores stay strictly descending.
    """

    def __init__(self) -> None:
        self.steps = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float64)

    def push(self, start: int, scores: np.ndarray) -> None:
        """Adds the scores of steps ``start, start + 1, …``."""
        if len(scores) == 0:
            return
        scores = np.asarray(scores, dtype=np.float64)
        # Within the chunk: steps strictly above every later step of the chunk.
        later = np.append(np.maximum.accumulate(scores[::-1])[::-1][1:], -np.inf)
        local = np.flatnonzero(scores > later)
        top = scores[local[0]]  # the chunk's maximum (its latest occurrence)
        keep = int(np.count_nonzero(self.scores > top))  # a prefix: scores descend
        self.steps = np.concatenate([self.steps[:keep], start + local])
        self.scores = np.concatenate([self.scores[:keep], scores[local]])
