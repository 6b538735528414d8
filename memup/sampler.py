"""The lane sampler: B lanes walk episodes rollout by rollout, producing training batches.

Each lane holds one marked episode and an offset. A batch is the next ``r`` steps of every
lane, plus, for every prediction step in it, the features and labels of its marked targets
(which may lie anywhere later in the episode). A lane that finished its episode loads the
next one; newly needed episodes are marked in groups (one scoring pass for many).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from memup.batch import Batch, collate, lane_slice
from memup.episode import Episode
from memup.lazy import LazyEpisode, lazy_episode_from_state

EpisodeSource = Callable[[int], list[Episode]]
Marker = Callable[[list[Episode]], None]
Rebuild = Callable[[np.ndarray], LazyEpisode]


class LaneSampler:
    """Walks B lanes through episodes ``r`` steps at a time.

    Args:
        source: returns ``n`` new episodes.
        mark: attaches ``extras["targets"]`` (and optional ``"context"``) to episodes.
        lanes: B.
        rollout: r, steps per batch and lane.
        frequency: f, every f-th step of a rollout (and its last) predicts.
        load_batch: episodes drawn and marked together when a lane needs one (default B).
        rebuild: makes a lazy episode from its spec (needed to load checkpoints of lazy
            episodes, which store specs and target peaks instead of arrays).
        skip: mean number of steps every lane passes without training after each rollout
            (0: lanes train on every step). See :meth:`skip_ahead`.
        seed: seeds the draw of the skips.
        reuse: lanes each marked episode is handed to (1: every episode walked once). A
            detector pass then feeds ``reuse`` walks; each walk has its own copy (its own
            block cache when lazy) and, with skips, trains on other rollouts of it.
    """

    def __init__(self, source: EpisodeSource, mark: Marker, lanes: int, rollout: int,
                 frequency: int = 1, load_batch: int | None = None,
                 rebuild: Rebuild | None = None, skip: int = 0, seed: int = 0,
                 reuse: int = 1) -> None:
        if not 1 <= frequency <= rollout:
            raise ValueError(f"prediction frequency must be in [1, r={rollout}], got {frequency}")
        if skip < 0 or skip % rollout:
            raise ValueError(f"skip must be a non-negative multiple of r={rollout}, got {skip}")
        if reuse < 1:
            raise ValueError(f"reuse must be >= 1, got {reuse}")
        self.source = source
        self.mark = mark
        self.lanes = lanes
        self.rollout = rollout
        self.frequency = frequency
        self.load_batch = load_batch or lanes
        self.rebuild = rebuild
        self.episodes: list[Episode | None] = [None] * lanes
        self.offsets = np.zeros(lanes, dtype=np.int64)
        self.ready: deque[Episode] = deque()
        self.episodes_loaded = 0
        self.skip = skip
        self.skip_rng = np.random.default_rng(seed + 104_729)
        self.reuse = reuse

    def _next_episode(self) -> Episode:
        if not self.ready:
            fresh = self.source(self.load_batch)
            self.mark(fresh)
            self.ready.extend(fresh)
            for _ in range(self.reuse - 1):  # later walks of the same marks, in the same order
                self.ready.extend(self._from_state(_episode_state(e)) for e in fresh)
        self.episodes_loaded += 1
        return self.ready.popleft()

    def next_batch(self) -> Batch:
        """The next rollout of every lane (loading new episodes where lanes finished)."""
        fresh = np.zeros(self.lanes, dtype=bool)
        for b in range(self.lanes):
            ep = self.episodes[b]
            if ep is None or self.offsets[b] >= len(ep):
                self.episodes[b] = self._next_episode()
                self.offsets[b] = 0
                fresh[b] = True
        slices = []
        for b, (ep, o) in enumerate(zip(self.episodes, self.offsets)):
            piece = lane_slice(ep, int(o), self.rollout, self.frequency)  # type: ignore[arg-type]
            slices.append(piece)
            self.offsets[b] = piece.end
        return collate(slices, fresh, self.rollout)

    def stagger(self) -> tuple[list[Episode], np.ndarray]:
        """Loads an episode into every lane, lane b at step ``b/B`` of it (rounded down to a
        multiple of r), so lanes reach their episodes' beginnings and ends at different
        updates instead of all at once. The caller owes each lane its memory state at that
        offset (a no-gradient pass, :func:`memup.stream.advance` from row 0).

        Returns:
            The lanes' episodes and offsets.
        """
        if any(e is not None for e in self.episodes):
            raise RuntimeError("stagger() places the lanes' first episodes: call it first")
        for b in range(self.lanes):
            ep = self._next_episode()
            self.episodes[b] = ep
            self.offsets[b] = (b * len(ep) // self.lanes) // self.rollout * self.rollout
        return list(self.episodes), self.offsets.copy()  # type: ignore[arg-type]

    def skip_ahead(self) -> tuple[np.ndarray, np.ndarray]:
        """Moves every lane forward by one skip, drawn for all lanes at once uniformly from
        the multiples of r in ``[0, 2·skip]``, without passing its episode's last rollout:
        each episode's first rollout (it is loaded at offset 0) and last rollout are always
        trained, the rollouts between them sampled. Lanes that finished stay where they are.
        The caller owes each lane its memory state at the new offset (a no-gradient pass
        over the skipped rows, :func:`memup.stream.advance`).

        Returns:
            The lanes' offsets before and after the skip.
        """
        before = self.offsets.copy()
        if self.skip == 0:
            return before, before.copy()
        gap = int(self.skip_rng.integers(0, 2 * self.skip // self.rollout + 1)) * self.rollout
        for b, ep in enumerate(self.episodes):
            if ep is None or before[b] >= len(ep):
                continue
            last = (len(ep) - 1) // self.rollout * self.rollout
            self.offsets[b] = max(before[b], min(before[b] + gap, last))
        return before, self.offsets.copy()

    # -- checkpointing: the lanes' episodes and offsets are part of the training state --------

    def state_dict(self) -> dict:
        """Lanes, offsets and the ready queue, as tensors (loadable with weights_only)."""
        return {
            "episodes": [None if e is None else _episode_state(e) for e in self.episodes],
            "offsets": torch.from_numpy(self.offsets.copy()),
            "ready": [_episode_state(e) for e in self.ready],
            "episodes_loaded": self.episodes_loaded,
            "skip_rng": dict(self.skip_rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict) -> None:
        self.episodes = [None if e is None else self._from_state(e) for e in state["episodes"]]
        self.offsets = state["offsets"].numpy().copy()
        self.ready = deque(self._from_state(e) for e in state["ready"])
        self.episodes_loaded = int(state["episodes_loaded"])
        if "skip_rng" in state:  # checkpoints written before skips existed never drew one
            self.skip_rng.bit_generator.state = state["skip_rng"]

    def _from_state(self, state: dict) -> Episode:
        if "lazy" not in state:
            return _episode_from_state(state)
        if self.rebuild is None:
            raise ValueError("this checkpoint holds lazy episodes: build the sampler with "
                             "their rebuild function")
        return lazy_episode_from_state(state["lazy"], self.rebuild)


def _episode_state(ep: Episode) -> dict:
    if isinstance(ep, LazyEpisode):
        return {"lazy": ep.state()}
    return {
        "inputs": torch.from_numpy(ep.inputs), "queries": torch.from_numpy(ep.queries),
        "labels": torch.from_numpy(ep.labels),
        "extras": {k: torch.from_numpy(v) for k, v in ep.extras.items()},
    }


def _episode_from_state(state: dict) -> Episode:
    return Episode(
        state["inputs"].numpy(), state["queries"].numpy(), state["labels"].numpy(),
        {k: v.numpy() for k, v in state["extras"].items()},
    )
