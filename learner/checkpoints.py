"""The learner's checkpoint: every network, optimiser, lane state and counter of the run.

Written atomically (temp file, fsync, rename) every ``checkpoint_every_s`` seconds, after
every PPO update (before its acks leave, so a kill never loses an acked update), and at a
clean stop; read back with ``weights_only=True``; writing one never touches Redis. A
restarted learner resumes its step counts and weights versions, so versions stay monotonic
for actors and scorers, and the rollouts it trained on but had not acked, so it acks them
instead of training on them twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import discard_partial_writes, load_checkpoint, save_checkpoint
from common.metrics import LearnerMetrics
from learner.train import Learner

log = logging.getLogger(__name__)

FILE = "learner.pt"


def learner_state(learner: Learner) -> dict[str, Any]:
    """Everything needed to continue the run (tensors, numbers, strings, lists, dicts)."""
    one, two, progress = learner.one, learner.two, learner.progress
    return {
        "memory": one.nets.memory.state_dict(),
        "predictor": one.nets.predictor.state_dict(),
        "detector": one.detector.state_dict(),
        "updater": one.updater.state_dict(),
        "policy": two.policy.state_dict(),
        "policy_memory": two.policy_memory.state_dict(),
        "ppo": two.ppo.state_dict(),
        "phase": progress.phase,
        "versions": dict(learner.publisher.versions),
        "memup_updates": progress.memup_updates,
        "memup_steps": progress.memup_steps,
        "ppo_updates": progress.ppo_updates,
        "env_steps_trained": progress.env_steps_trained,
        "env_steps": learner.state.env_steps_seen,  # as last read: a checkpoint needs no Redis
        "feed": learner.feed.state_dict(),
        "outcomes": list(two.outcomes),
        "done": progress.done,
        "rng": torch.get_rng_state(),
    }


def restore(learner: Learner, state: dict[str, Any]) -> None:
    """Loads :func:`learner_state` output into a freshly built learner."""
    two, progress = learner.two, learner.progress
    _load_memory(learner, state)
    two.policy.load_state_dict(state["policy"])
    two.policy_memory.load_state_dict(state["policy_memory"])
    two.ppo.load_state_dict(state["ppo"])
    progress.phase = int(state["phase"])
    learner.publisher.versions.update({k: int(v) for k, v in state["versions"].items()})
    progress.memup_updates = int(state["memup_updates"])
    progress.memup_steps = int(state["memup_steps"])
    progress.ppo_updates = int(state["ppo_updates"])
    progress.env_steps_trained = int(state["env_steps_trained"])
    learner.state.env_steps_seen = int(state["env_steps"])
    learner.feed.load_state_dict(state.get("feed", {}))
    two.outcomes.extend(int(o) for o in state["outcomes"])
    progress.done = bool(state.get("done", False))
    torch.set_rng_state(state["rng"])


def _load_memory(learner: Learner, state: dict[str, Any]) -> None:
    """Phase I's networks, their EMA copies and the MemUP optimiser from ``state``."""
    one = learner.one
    one.nets.memory.load_state_dict(state["memory"])
    one.nets.predictor.load_state_dict(state["predictor"])
    one.detector.load_state_dict(state["detector"])
    one.updater.load_state_dict(state["updater"])


def adopt_memory(learner: Learner, source: Path) -> None:
    """Starts a fresh run from another run's trained memory (``learner.init_memory``).

    The memory, predictor, their EMA copies and the MemUP optimiser come from ``source``
    (a run directory or its ``checkpoints/learner.pt``); policy, counters and versions stay
    fresh. In frozen mode phase II starts at once on the EMA memory, unless
    ``learner.init_memory_phase`` is 1 (phase I trains the adopted memory further first).
    """
    path = source / "checkpoints" / FILE if source.is_dir() else source
    state = load_checkpoint(path, learner.device)
    _load_memory(learner, state)
    log.info("starting from the memory of %s (%d MemUP updates there)", path,
             int(state["memup_updates"]))
    if learner.config.ppo.mode == "frozen" and learner.config.learner.init_memory_phase == 2:
        learner.two.start()


class Checkpointer:
    """Saves the learner every ``every_s`` seconds (call :meth:`maybe` after each update)."""

    def __init__(self, learner: Learner, run_dir: Path, every_s: float,
                 metrics: LearnerMetrics) -> None:
        self.learner, self.path, self.every_s, self.metrics = (
            learner, run_dir / "checkpoints" / FILE, every_s, metrics)
        self.last = time.monotonic()

    def resume(self) -> bool:
        """Loads the newest checkpoint if there is one; returns whether it did."""
        if discarded := discard_partial_writes(self.path):
            log.info("removed %d partial checkpoint write(s) a kill left behind", discarded)
        if not self.path.is_file():
            return False
        restore(self.learner, load_checkpoint(self.path, self.learner.device))
        progress = self.learner.progress
        log.info("resumed from %s: phase %d, %d MemUP and %d PPO updates, versions %s",
                 self.path, progress.phase, progress.memup_updates, progress.ppo_updates,
                 self.learner.publisher.versions)
        return True

    def maybe(self, now: bool = False) -> None:
        """Saves if ``now`` or if ``every_s`` passed since the last save."""
        if now or time.monotonic() - self.last >= self.every_s:
            self.save()

    def save(self) -> None:
        started = time.perf_counter()
        save_checkpoint(self.path, learner_state(self.learner))
        self.last = time.monotonic()
        self.metrics.checkpoint_saved(time.perf_counter() - started)
