"""Single-process MemUP training: the lane sampler, the detector and the updater wired together.

Two protocols (memup-spec A.10):

* :class:`MemoryTraining`: memory and predictor trained jointly on marked targets (T-Maze
  phase I, Add). One sampler, one optimiser, the detector EMA after every step.
* :class:`AlternatingTraining`: the Copy protocol. A predictor phase (memory frozen,
  current-step targets, live context) and a memory phase (predictor frozen, top-K targets,
  stored EMA context, loss × 0.1) alternate; the EMA copies move once per cycle and are
  the networks evaluated.

Both are driven by the caller one :meth:`step` at a time and expose ``state_dict`` /
``load_state_dict`` covering every piece of state that decides the next update (networks,
EMA copies, optimisers, carried lane states, lanes' episodes, RNGs), so a resumed run takes
exactly the update it would have taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from memup.config import AlternatingSchedule, UpdateConfig, WalkConfig
from memup.detector import SurpriseDetector, TargetRule, mark_episodes, mark_streamed
from memup.networks import TaskNets
from memup.sampler import EpisodeSource, LaneSampler, Rebuild
from memup.stream import advance
from memup.update import Updater


def _rng_state(rng: np.random.Generator) -> dict:
    return dict(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


class _Checkpointable:
    """Checkpoint logic shared by the protocols: every stateful part, plus the RNGs."""

    source_rng: np.random.Generator
    mark_rng: np.random.Generator

    def _parts(self) -> dict[str, Any]:
        """Name → object with ``state_dict`` / ``load_state_dict``."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        state = {name: part.state_dict() for name, part in self._parts().items()}
        state.update(source_rng=_rng_state(self.source_rng), mark_rng=_rng_state(self.mark_rng),
                     torch_rng=torch.get_rng_state())
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, part in self._parts().items():
            part.load_state_dict(state[name])
        _set_rng_state(self.source_rng, state["source_rng"])
        _set_rng_state(self.mark_rng, state["mark_rng"])
        torch.set_rng_state(state["torch_rng"])


class MemoryTraining(_Checkpointable):
    """Memory + predictor on top-K (+ current step) targets; the detector follows by EMA.

    Args:
        nets: memory, predictor, outcome kind.
        source: new episodes (drawn with the caller's RNG, passed as ``rng`` for checkpoints).
        source_rng: the RNG ``source`` draws from; saved and restored with the run.
        rule: target rule (RL: top-1 + current step).
        walk: lanes, rollout, prediction frequency, skip (lanes pass ``skip`` steps on
            average between trained rollouts, their states carried by a no-gradient pass).
        update: optimiser settings.
        ema_decay: detector EMA decay per update (None: ``update.ema_decay``).
        seed: seeds the marking RNG.
        device: compute device.
        lazy: ``source`` gives :class:`~memup.lazy.LazyEpisode` records and this rebuilds
            one from its spec: marks are streamed (:func:`mark_streamed`, top-1 rules) and
            checkpoints hold specs, so memory stays constant in the episode length.
        stagger: lanes start their first episodes at staggered offsets (lane b at b/B of
            it), their memory (and live context) states computed by a no-gradient pass of
            the online networks; new episodes are then marked in groups of the detector's
            group size, not B.
    """

    def __init__(self, nets: TaskNets, source: EpisodeSource, source_rng: np.random.Generator,
                 rule: TargetRule, walk: WalkConfig, update: UpdateConfig,
                 ema_decay: float | None = None, seed: int = 0,
                 device: torch.device | str = "cpu", lazy: Rebuild | None = None,
                 stagger: bool = False) -> None:
        self.nets = nets
        self.source_rng = source_rng
        self.mark_rng = np.random.default_rng(seed + 7919)
        decay = update.ema_decay if ema_decay is None else ema_decay
        self.detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, decay,
                                         device=device)
        self.stagger = stagger
        self.device = device
        if lazy is not None:
            def mark(eps: list) -> None:
                mark_streamed(eps, rule, self.detector)
        else:
            def mark(eps: list) -> None:
                mark_episodes(eps, rule, self.mark_rng, self.detector)
        self.sampler = LaneSampler(source, mark, walk.lanes, walk.rollout, walk.frequency,
                                   load_batch=self.detector.group if stagger else None,
                                   rebuild=lazy, skip=walk.skip, seed=seed,
                                   reuse=walk.reuse)
        self.updater = Updater(nets, update, walk.lanes, self.detector, device)

    @property
    def updates(self) -> int:
        return self.updater.updates

    def step(self) -> dict[str, float]:
        """One update on the next batch of every lane (then the lanes' skip, if any)."""
        if self.stagger and self.updater.updates == 0 and self.sampler.episodes[0] is None:
            episodes, offsets = self.sampler.stagger()
            self._carry(episodes, np.zeros_like(offsets), offsets)
        stats = self.updater.step(self.sampler.next_batch())
        if self.sampler.skip:
            starts, stops = self.sampler.skip_ahead()
            self._carry(self.sampler.episodes, starts, stops)  # type: ignore[arg-type]
        return stats

    def _carry(self, episodes: list, starts: np.ndarray, stops: np.ndarray) -> None:
        """Moves the carried memory (and live context) states of every lane from its
        ``starts`` to its ``stops`` offset by a no-gradient pass of the online networks."""
        r, updater = self.sampler.rollout, self.updater
        updater.state = advance(self.nets.memory, updater.state, [e.inputs for e in episodes],
                                starts, stops, r, self.device)
        if updater.context_state is not None:  # a live context LSTM is carried as well
            updater.context_state = advance(
                self.nets.predictor.context, updater.context_state,  # type: ignore[arg-type]
                [e.queries for e in episodes], starts, stops, r, self.device)

    def _parts(self) -> dict[str, Any]:
        return {"memory": self.nets.memory, "predictor": self.nets.predictor,
                "detector": self.detector, "updater": self.updater, "sampler": self.sampler}


class AlternatingTraining(_Checkpointable):
    """Copy-task training: predictor and memory phases alternate; EMA nets are the model.

    Args:
        nets: memory, context predictor, ``classification``.
        source, source_rng: episodes and the RNG they are drawn with.
        walk: lanes and rollout (its ``frequency`` is the predictor phase's, normally 1).
        schedule: phase lengths, EMA cadence, memory-phase targets.
        lr: Adam learning rate of both optimisers (None: ``schedule.lr``).
        seed: seeds the marking RNG.
        device: compute device.
    """

    def __init__(self, nets: TaskNets, source: EpisodeSource, source_rng: np.random.Generator,
                 walk: WalkConfig, schedule: AlternatingSchedule, lr: float | None = None,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.nets = nets
        self.schedule = schedule
        lr = schedule.lr if lr is None else lr
        self.source_rng = source_rng
        self.mark_rng = np.random.default_rng(seed + 7919)
        self.detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind,
                                         schedule.ema_decay, device=device)
        current = TargetRule(top_k=0, current=True)
        future = TargetRule(top_k=schedule.top_k, current=False, context=True)
        self.predictor_sampler = LaneSampler(
            source, lambda eps: mark_episodes(eps, current, self.mark_rng),
            walk.lanes, walk.rollout, walk.frequency)
        self.memory_sampler = LaneSampler(
            source, lambda eps: mark_episodes(eps, future, self.mark_rng, self.detector),
            walk.lanes, walk.rollout, schedule.memory_frequency)
        self.predictor_updater = Updater(
            nets, UpdateConfig(lr=lr, train_memory=False, live_context=True, ema=False),
            walk.lanes, None, device)
        self.memory_updater = Updater(
            nets, UpdateConfig(lr=lr, train_predictor=False, ema=False,
                               loss_scale=schedule.memory_loss_scale),
            walk.lanes, None, device)
        self.updates = 0

    @property
    def cycle(self) -> int:
        return self.schedule.memory_updates + self.schedule.predictor_updates

    def phase(self) -> str:
        """``"predictor"`` or ``"memory"``: which phase the next update belongs to."""
        s = self.schedule
        if self.updates < s.warmup:
            return "predictor"
        in_cycle = (self.updates - s.warmup) % self.cycle
        return "memory" if in_cycle < s.memory_updates else "predictor"

    def step(self) -> dict[str, float]:
        """One update of the current phase (EMA step at the start of every cycle)."""
        s = self.schedule
        if self.updates >= s.warmup and (self.updates - s.warmup) % self.cycle == 0:
            self.detector.update(self.nets.memory, self.nets.predictor)
        phase = self.phase()
        if phase == "memory":
            stats = self.memory_updater.step(self.memory_sampler.next_batch())
        else:
            stats = self.predictor_updater.step(self.predictor_sampler.next_batch())
        self.updates += 1
        return {**stats, "memory_phase": float(phase == "memory")}

    def _parts(self) -> dict[str, Any]:
        return {"memory": self.nets.memory, "predictor": self.nets.predictor,
                "detector": self.detector, "predictor_updater": self.predictor_updater,
                "memory_updater": self.memory_updater,
                "predictor_sampler": self.predictor_sampler,
                "memory_sampler": self.memory_sampler}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.updates = int(state["updates"])
