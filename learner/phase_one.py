"""Phase I: MemUP trains the memory and the predictor on segments from the replay window.

Every update takes one segment of every lane from the scorers (:class:`SegmentFeed`);
every ``memup.publish_every`` updates the EMA copies are published for the scorers and the
detector's accuracy on fresh episodes is measured. Phase I ends when that accuracy reaches
``memup.target_accuracy``. Joint mode (phase II) runs the same updates between PPO updates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import redis
import torch
from torch import nn

from common import keys
from common.config import ClusterConfig
from common.ledger import Ledger
from common.metrics import LearnerMetrics
from common.models import DETECTOR, detector_parts
from common.runlog import RunLog
from learner.feed import SegmentFeed
from learner.publishing import Publisher
from learner.run_state import Progress, RunState
from memup.detector import SurpriseDetector
from memup.update import UpdateConfig, Updater
from tasks.base import Task

log = logging.getLogger(__name__)


class PhaseOne:
    """Owns the memory, the predictor, their EMA copies (the detector) and the MemUP optimiser.

    Args:
        on_update: called after each update with False (a checkpoint may be due).
    """

    def __init__(self, config: ClusterConfig, r: redis.Redis, task: Task, feed: SegmentFeed,
                 metrics: LearnerMetrics, run_log: RunLog, stop: threading.Event,
                 state: RunState, progress: Progress, publisher: Publisher, ledger: Ledger,
                 on_update: Callable[[bool], None], device: torch.device) -> None:
        self.config, self.r, self.feed, self.metrics, self.run_log, self.stop = (
            config, r, feed, metrics, run_log, stop)
        self.state, self.progress, self.publisher, self.ledger, self.on_update = (
            state, progress, publisher, ledger, on_update)
        m = config.memup
        self.nets = task.networks(config)
        self.nets.memory.to(device)
        self.nets.predictor.to(device)
        self.detector = SurpriseDetector(self.nets.memory, self.nets.predictor, self.nets.kind,
                                         m.ema_decay, device=device)
        self.base_update = UpdateConfig(lr=m.lr, reconstruction=m.reconstruction,
                                        reconstruction_frames=m.reconstruction_frames)
        self.updater = Updater(self.nets, self.base_update, m.lanes, self.detector, device)
        self.memory_accuracy = 0.0
        self.last_loss = 0.0

    def weights(self) -> Mapping[str, nn.Module]:
        """What ``detector`` weights are published from: the EMA memory and predictor."""
        return detector_parts(self.detector.memory, self.detector.predictor)

    def memup_update(self) -> dict[str, float] | None:
        """One MemUP update on the next batch of every lane (None if stopping)."""
        batch = None
        while batch is None and not self.stop.is_set():
            batch = self.feed.next_batch(timeout_s=1.0)
        if batch is None:
            return None
        self.publisher.keep_run_state()
        m, progress = self.config.memup, self.progress
        measure = m.measure_every > 0 and progress.memup_updates % m.measure_every == 0
        started = time.perf_counter()
        # Measuring the bytes stored for backward costs a hook per tensor: every so often.
        self.updater.config = replace(self.base_update, measure_saved=measure)
        stats = self.updater.step(batch)
        progress.memup_updates += 1
        self.ledger.episodes("sampled", sorted(set(self.feed.batch_episodes)))
        elapsed = time.perf_counter() - started
        self.metrics.update_duration_seconds.labels(kind="memup").observe(elapsed)
        self.metrics.updates_total.labels(kind="memup").inc()
        self.metrics.samples_total.labels(kind="memup").inc(stats["steps"])
        self.metrics.loss.labels(loss="memory").set(stats["loss"])
        if "outcome_sign_accuracy" in stats:
            self.metrics.outcome_sign_accuracy_ratio.set(stats["outcome_sign_accuracy"])
        if "reconstruction_loss" in stats:
            self.metrics.loss.labels(loss="reconstruction").set(stats["reconstruction_loss"])
        self.last_loss = stats["loss"]
        if "saved_bytes" in stats:
            self.metrics.saved_activation_bytes.set(stats["saved_bytes"])
        progress.memup_steps += int(stats["steps"])
        if progress.memup_updates % m.publish_every == 0:
            self.publisher.publish(DETECTOR)
            self.publisher.set_control(trained_steps=progress.memup_steps)
        self.on_update(False)
        return stats

    def detector_accuracy(self) -> tuple[float, int]:
        """The EMA detector's accuracy on the newest scored outcomes of fresh episodes, and n.

        Outcomes scored by older detector versions stay in the window: the detector only
        improves, so they can only make the measurement stricter.
        """
        key, n = keys.outcomes_key(self.config.run.name), self.config.memup.accuracy_outcomes
        raw = self.state.call(lambda: self.r.lrange(key, 0, n - 1), "reading outcomes")
        picked = [int(v.split(b":")[1]) for v in raw]
        return (sum(picked) / len(picked) if picked else 0.0), len(picked)

    def wait_for_replay(self) -> None:
        """Waits until the replay window holds ``memup.min_replay`` scored episodes."""
        key = keys.replay_key(self.config.run.name)
        while not self.stop.is_set():
            self.publisher.keep_run_state()
            if self.state.call(lambda: self.r.zcard(key), "reading the replay window") \
                    >= self.config.memup.min_replay:
                return
            self.stop.wait(0.5)

    def run(self) -> None:
        """Trains until the detector's accuracy reaches the target, ``memup.max_updates``
        updates, or ``stop``; the caller starts phase II unless stopped."""
        m, progress = self.config.memup, self.progress
        self.publisher.set_control(phase=1)
        self.metrics.phase.set(1)
        if self.publisher.versions[DETECTOR] == 0:
            self.publisher.publish(DETECTOR)  # scorers score with the very weights being trained
        self.wait_for_replay()
        log.info("phase I: training the memory on %d lanes x %d steps", m.lanes, m.rollout)
        while not self.stop.is_set() and progress.memup_updates < m.max_updates:
            stats = self.memup_update()
            if stats is None:
                return
            if progress.memup_updates % m.publish_every == 0:
                accuracy, n = self.detector_accuracy()
                self.memory_accuracy = accuracy
                self.metrics.memory_accuracy_ratio.set(accuracy)
                self.run_log.log({"phase": 1, "update": progress.memup_updates, **stats,
                                  "memory_accuracy": accuracy, "scored": n})
                if n >= m.accuracy_outcomes and accuracy >= m.target_accuracy:
                    log.info("phase I done: detector accuracy %.3f on %d fresh episodes "
                             "after %d updates", accuracy, n, progress.memup_updates)
                    break
