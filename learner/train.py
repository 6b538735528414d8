"""The learner's training: phase I (MemUP memory), then phase II (PPO), or joint.

:class:`Learner` composes the parts, each in its own module: :class:`PhaseOne` trains the
memory and the predictor until the detector's accuracy on fresh episodes reaches the
target; :class:`PhaseTwo` freezes that memory as the policy's recurrent core and trains the
policy with PPO (``ppo.mode = "joint"`` interleaves MemUP updates; ``"lstm"`` is the
PPO-LSTM baseline, no MemUP at all); :class:`Publisher` publishes their weights and keeps
the run's state in Redis. The run's counters live in one :class:`Progress`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
import torch

from common.config import ClusterConfig
from common.ledger import Ledger
from common.metrics import LearnerMetrics
from common.models import DETECTOR, POLICY
from common.runlog import RunLog
from learner.feed import SegmentFeed
from learner.phase_one import PhaseOne
from learner.phase_two import PhaseTwo
from learner.publishing import Publisher
from learner.run_state import Progress, RunState
from tasks.registry import task_for

log = logging.getLogger(__name__)


class Learner:
    """Every trained network, optimiser and counter of the run, and the order of the phases."""

    def __init__(self, config: ClusterConfig, r: redis.Redis, feed: SegmentFeed,
                 metrics: LearnerMetrics, run_log: RunLog, stop: threading.Event,
                 device: torch.device) -> None:
        self.config, self.feed, self.stop, self.device = config, feed, stop, device
        self.ledger = Ledger.from_env("learner")
        self.state = RunState(config, r, metrics, stop, self.ledger)
        task = task_for(config)
        # joint and lstm start with PPO at once
        self.progress = Progress(phase=1 if config.ppo.mode == "frozen" else 2)
        self.publisher = Publisher(config, r, self.state, self.progress, metrics)
        #: after each update, e.g. a checkpoint; True: the update must be saved now
        self.on_update: Callable[[bool], None] = lambda now: None

        def saved(now: bool) -> None:  # late-bound: the caller sets on_update after building
            self.on_update(now)

        # Built in this order (memory networks first, then the policy): both draw their
        # initial weights from torch's RNG, so a seed gives the same networks as before.
        self.one = PhaseOne(config, r, task, feed, metrics, run_log, stop, self.state,
                            self.progress, self.publisher, self.ledger, saved, device)
        self.two = PhaseTwo(config, task, feed, metrics, run_log, stop, self.state,
                            self.progress, self.publisher, self.ledger, self.one, saved, device)
        self.publisher.sources = {DETECTOR: self.one.weights, POLICY: self.two.weights}

    def train(self) -> None:
        """Runs the phases left to run, until the run is done or ``stop``."""
        progress = self.progress
        if progress.done:
            log.info("this run is finished (its checkpoint says so); nothing to train. "
                     "Start a new run with another run.name")
        if progress.phase == 1 and not progress.done:
            self.one.run()
            if not self.stop.is_set():
                self.two.start()
        if not self.stop.is_set() and not progress.done:
            self.two.run()

    def status(self) -> dict[str, float]:
        """The live numbers ``memup up`` shows for the learner."""
        progress = self.progress
        return {"phase": progress.phase, "memup_updates": progress.memup_updates,
                "memup_steps": progress.memup_steps,
                "ppo_updates": progress.ppo_updates,
                "memory_accuracy": self.one.memory_accuracy,
                "success": self.two.success(),
                "policy_version": self.publisher.versions[POLICY], "loss": self.one.last_loss,
                "lag": self.two.last_lag}
