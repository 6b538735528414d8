"""What the learner tells the rest of the run through Redis: weights, control hash, run state.

Scorers score with the ``detector`` weights and actors act with the ``policy`` weights, each
published as a new, monotonic version (:mod:`common.weights`). The control hash says the
phase, the steps trained on and whether the run is done; the learner is its only writer
and puts it back, with the weights, when Redis lost it (:meth:`RunState.ensure`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import redis
from torch import nn

from common.config import ClusterConfig
from common.metrics import LearnerMetrics
from common.models import DETECTOR, POLICY, flatten
from common.weights import publish_weights, weights_version
from learner.run_state import Progress, RunState

Parts = Callable[[], Mapping[str, nn.Module]]
"""Returns the networks one weights name is published from (see :mod:`common.models`)."""


class Publisher:
    """Publishes weights versions and keeps the run's state in Redis.

    The phases own the networks: each registers what its weights name is built from in
    :attr:`sources` (``detector`` by phase I, ``policy`` by phase II).
    """

    def __init__(self, config: ClusterConfig, r: redis.Redis, state: RunState,
                 progress: Progress, metrics: LearnerMetrics) -> None:
        self.config, self.r, self.state, self.progress, self.metrics = (
            config, r, state, progress, metrics)
        self.versions = {DETECTOR: 0, POLICY: 0}
        self.sources: dict[str, Parts] = {}

    def publish(self, name: str) -> None:
        """Publishes the next version of ``detector`` or ``policy`` weights."""
        parts = self.sources[name]()
        self.versions[name] += 1
        flat, version, run = flatten(parts), self.versions[name], self.config.run.name
        # Repeating a publish is a no-op, so a retry after a lost reply is safe.
        self.state.call(lambda: publish_weights(self.r, run, name, flat, version),
                        f"publishing {name} weights")
        self.metrics.weights_version.labels(name=name).set(self.versions[name])

    def env_steps(self) -> int:
        """Env steps all actors of the run have published (the budget counts these)."""
        return self.state.env_steps()

    def keep_run_state(self, force: bool = False) -> None:
        """Puts the run's phase, counts and weights back if Redis lost them (see
        :meth:`RunState.ensure`): the actors' phase I rate limit weighs the env steps against
        the steps trained on, and readers need weights to fetch."""
        phase = self.progress.phase
        if self.state.ensure(phase, self.progress.memup_steps, force):
            if phase == 1 or self.config.ppo.mode == "joint":
                self.publish(DETECTOR)
            if phase == 2:
                self.publish(POLICY)

    def sync_versions(self) -> None:
        """Continues weights versions after the newest published ones.

        A learner restarted from a checkpoint older than its last publication must not
        reuse a version: readers already at it would never fetch the rolled-back weights.
        """
        for name in self.versions:
            published = self.state.call(
                lambda name=name: weights_version(self.r, self.config.run.name, name),
                "reading weights versions")
            self.versions[name] = max(self.versions[name], published)

    def set_control(self, **fields: int) -> None:
        """Sets fields of the control hash (phase, trained_steps, done)."""
        self.state.set_control(**fields)
