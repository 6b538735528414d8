"""The learner's training loop: phase I (MemUP memory), then phase II (PPO), or joint.

Phase I trains memory + predictor on segments from the replay window and publishes the
EMA copies for the scorers, until the detector's accuracy on fresh episodes reaches the
target. Phase II freezes that memory as the policy's recurrent core and trains the policy
and value heads with PPO on on-policy rollouts, publishing a new policy version after every
update. ``ppo.mode = "joint"`` interleaves MemUP updates and soft-updates the policy's
memory copy; ``"lstm"`` is the PPO-LSTM baseline (no MemUP at all).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import redis
import torch

from common import keys
from common.config import ClusterConfig
from common.ledger import Ledger
from common.metrics import LearnerMetrics
from common.models import DETECTOR, POLICY, detector_parts, flatten, policy_parts
from common.runlog import RunLog
from common.weights import publish_weights, weights_version
from learner.feed import SegmentFeed
from learner.rollouts import rollout_batch
from learner.run_state import RunState
from memup.detector import SurpriseDetector
from memup.update import UpdateConfig, Updater
from rl.policy import soft_update
from rl.ppo import PPOConfig, PPOTrainer
from tasks.registry import task_for

log = logging.getLogger(__name__)


class Learner:
    """Owns every trained network, the optimisers and the run's progress counters."""

    def __init__(self, config: ClusterConfig, r: redis.Redis, feed: SegmentFeed,
                 metrics: LearnerMetrics, run_log: RunLog, stop: threading.Event,
                 device: torch.device) -> None:
        self.config, self.r, self.feed, self.metrics, self.run_log, self.stop = (
            config, r, feed, metrics, run_log, stop)
        self.device = device
        self.ledger = Ledger.from_env("learner")
        self.state = RunState(config, r, metrics, stop, self.ledger)
        self.task = task_for(config)
        m, p = config.memup, config.ppo
        self.nets = self.task.networks(config)
        self.nets.memory.to(device)
        self.nets.predictor.to(device)
        self.detector = SurpriseDetector(self.nets.memory, self.nets.predictor, self.nets.kind,
                                         m.ema_decay, device=device)
        self.base_update = UpdateConfig(lr=m.lr, reconstruction=m.reconstruction,
                                        reconstruction_frames=m.reconstruction_frames)
        self.updater = Updater(self.nets, self.base_update, m.lanes, self.detector, device)
        self.policy = self.task.policy(config).to(device)
        self.policy_memory = copy.deepcopy(self.nets.memory).requires_grad_(False)
        self.ppo = PPOTrainer(self.policy, PPOConfig(
            lr=p.lr, clip=p.clip, value_coef=p.value_coef, entropy_coef=p.entropy_coef,
            epochs=p.epochs, minibatch_episodes=p.minibatch_episodes, gamma=p.gamma,
            lam=p.lam), device)
        self.phase = 1 if p.mode == "frozen" else 2  # joint and lstm start with PPO at once
        self.versions = {DETECTOR: 0, POLICY: 0}
        self.memup_updates = 0
        self.memup_steps = 0  #: env steps trained on by MemUP updates (repeats counted)
        self.ppo_updates = 0
        self.env_steps_trained = 0
        self.outcomes: deque[int] = deque(maxlen=p.success_episodes)
        self.memory_accuracy = 0.0
        self.done = False
        self.last_loss = 0.0
        self.last_lag = 0
        #: after each update, e.g. a checkpoint; True: the update must be saved now
        self.on_update: Callable[[bool], None] = lambda now: None

    # -- publishing -----------------------------------------------------------------------

    def publish(self, name: str) -> None:
        """Publishes the next version of ``detector`` or ``policy`` weights."""
        if name == DETECTOR:
            parts = detector_parts(self.detector.memory, self.detector.predictor)
        else:
            memory = None if self.config.ppo.mode == "lstm" else self.policy_memory
            parts = policy_parts(memory, self.policy)
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
        if self.state.ensure(self.phase, self.memup_steps, force):
            if self.phase == 1 or self.config.ppo.mode == "joint":
                self.publish(DETECTOR)
            if self.phase == 2:
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
        self.state.set_control(**fields)

    # -- phase I --------------------------------------------------------------------------

    def memup_update(self) -> dict[str, float] | None:
        """One MemUP update on the next batch of every lane (None if stopping)."""
        batch = None
        while batch is None and not self.stop.is_set():
            batch = self.feed.next_batch(timeout_s=1.0)
        if batch is None:
            return None
        self.keep_run_state()
        m = self.config.memup
        measure = m.measure_every > 0 and self.memup_updates % m.measure_every == 0
        started = time.perf_counter()
        # Measuring the bytes stored for backward costs a hook per tensor: every so often.
        self.updater.config = replace(self.base_update, measure_saved=measure)
        stats = self.updater.step(batch)
        self.memup_updates += 1
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
        self.memup_steps += int(stats["steps"])
        if self.memup_updates % m.publish_every == 0:
            self.publish(DETECTOR)
            self.set_control(trained_steps=self.memup_steps)
        self.on_update(False)
        return stats

    def detector_accuracy(self) -> tuple[float, int]:
        """The EMA detector's accuracy on the final step of the newest fresh episodes, and n.

        Outcomes scored by older detector versions stay in the window: the detector only
        improves, so they can only make the measurement stricter.
        """
        key, n = keys.outcomes_key(self.config.run.name), self.config.memup.accuracy_episodes
        raw = self.state.call(lambda: self.r.lrange(key, 0, n - 1), "reading outcomes")
        picked = [int(v.split(b":")[1]) for v in raw]
        return (sum(picked) / len(picked) if picked else 0.0), len(picked)

    def wait_for_replay(self) -> None:
        key = keys.replay_key(self.config.run.name)
        while not self.stop.is_set():
            self.keep_run_state()
            if self.state.call(lambda: self.r.zcard(key), "reading the replay window") \
                    >= self.config.memup.min_replay:
                return
            self.stop.wait(0.5)

    def run_phase_one(self) -> None:
        m = self.config.memup
        self.set_control(phase=1)
        self.metrics.phase.set(1)
        if self.versions[DETECTOR] == 0:
            self.publish(DETECTOR)  # scorers score with the very weights being trained
        self.wait_for_replay()
        log.info("phase I: training the memory on %d lanes x %d steps", m.lanes, m.rollout)
        while not self.stop.is_set() and self.memup_updates < m.max_updates:
            stats = self.memup_update()
            if stats is None:
                return
            if self.memup_updates % m.publish_every == 0:
                accuracy, n = self.detector_accuracy()
                self.memory_accuracy = accuracy
                self.metrics.memory_accuracy_ratio.set(accuracy)
                self.run_log.log({"phase": 1, "update": self.memup_updates, **stats,
                                  "memory_accuracy": accuracy, "scored": n})
                if n >= m.accuracy_episodes and accuracy >= m.target_accuracy:
                    log.info("phase I done: detector accuracy %.3f on %d fresh episodes "
                             "after %d updates", accuracy, n, self.memup_updates)
                    break
        if not self.stop.is_set():
            self.start_phase_two()

    def start_phase_two(self) -> None:
        """Freezes the EMA memory (the one that reached the target) as the policy's core."""
        self.policy_memory.load_state_dict(self.detector.memory.state_dict())
        adopt = getattr(self.policy, "adopt_phase_one", None)
        if adopt is not None:  # e.g. heads with a frame CNN start from phase I's networks
            adopt(self.detector.memory, self.detector.predictor, self.config.ppo.init_encoder)
        self.phase = 2
        self.publish(POLICY)
        self.state.begin_ppo()
        self.set_control(phase=2)
        self.metrics.phase.set(2)

    # -- phase II -------------------------------------------------------------------------

    def ppo_update(self) -> dict[str, Any] | None:
        p = self.config.ppo
        version = self.versions[POLICY]
        rollouts = []
        while len(rollouts) < p.episodes_per_update and not self.stop.is_set():
            self.keep_run_state()
            got = self.feed.rollouts(p.episodes_per_update - len(rollouts), version, p.max_lag,
                                     timeout_s=1.0)
            stale = [r for r in got if version - r.policy_version > p.max_lag]
            if stale:  # received ahead of need, then the policy moved on: never train on them
                self.metrics.rollouts_dropped_total.inc(len(stale))
                self.feed.ack_rollouts([r.rollout_id for r in stale])
                self.ledger.episodes("dropped", [r.episode for r in stale], why="stale")
            rollouts += [r for r in got if version - r.policy_version <= p.max_lag]
        if self.stop.is_set():
            return None
        memory = None if p.mode == "lstm" else self.policy_memory
        records = getattr(self.policy, "reads_records", False)
        batch = rollout_batch(rollouts, self.task, memory, self.device, with_records=records)
        if records:
            batch.inputs = self.policy.with_outcomes(batch.inputs)
        started = time.perf_counter()
        self.policy.train()
        stats = self.ppo.update(batch)
        self.policy.eval()
        self.metrics.update_duration_seconds.labels(kind="ppo").observe(
            time.perf_counter() - started)
        self.feed.ack_rollouts([r.rollout_id for r in rollouts])
        self.ppo_updates += 1
        self.ledger.episodes("trained", [r.episode for r in rollouts],
                             inc=self.feed.incarnation, u=self.ppo_updates)
        steps = int(batch.mask.sum())
        self.env_steps_trained += steps
        for r in rollouts:
            rewards = r.arrays["reward"]
            self.outcomes.append(int(self.task.succeeded(float(rewards[-1]), len(rewards),
                                                         float(np.sum(rewards)))))
            self.metrics.policy_lag_versions.observe(version - r.policy_version)
        self.metrics.updates_total.labels(kind="ppo").inc()
        self.metrics.samples_total.labels(kind="ppo").inc(steps)
        for name in ("policy", "value", "entropy"):
            self.metrics.loss.labels(loss=name).set(stats[f"{name}_loss" if name != "entropy"
                                                          else "entropy"])
        success = sum(self.outcomes) / len(self.outcomes)
        returns = [float(np.sum(r.arrays["reward"])) for r in rollouts]
        self.last_lag = version - min(r.policy_version for r in rollouts)
        self.metrics.success_ratio.set(success)
        self.publish(POLICY)
        # Saved before its acks leave (with the next request): a kill now rolls the update
        # back and its rollouts, never acked, come back — none lost, none trained twice.
        self.on_update(True)
        out = {**stats, "success": success, "episodes": len(rollouts),
               "mean_return": float(np.mean(returns)),
               "mean_steps": float(np.mean([len(r.arrays["reward"]) for r in rollouts])),
               "lag": version - min(r.policy_version for r in rollouts)}
        out.update(self.task.rollout_stats(np.concatenate([r.arrays["reward"]
                                                           for r in rollouts])))
        gain = getattr(self.policy, "outcome_weight", None)
        if gain is not None:
            out["outcome_gain"] = float(gain.detach())
        return out

    def run_phase_two(self) -> None:
        p = self.config.ppo
        if self.versions[POLICY] == 0:
            self.publish(POLICY)
        self.state.begin_ppo()  # idempotent: a restarted learner finds its group
        self.set_control(phase=2)
        self.metrics.phase.set(2)
        log.info("phase II: PPO (%s) on %d-episode batches", p.mode, p.episodes_per_update)
        while not self.stop.is_set():
            if p.mode == "joint":
                for _ in range(p.memup_updates_per_ppo):
                    if self.memup_update() is None:
                        return
                    soft_update(self.policy_memory, self.nets.memory, p.soft_keep)
            stats = self.ppo_update()
            if stats is None:
                return
            steps = self.env_steps()
            self.run_log.log({"phase": 2, "ppo_update": self.ppo_updates, "env_steps": steps,
                              "memup_update": self.memup_updates, **stats})
            full = len(self.outcomes) == self.outcomes.maxlen
            if full and stats["success"] >= p.target_success:
                log.info("done: success rate %.3f over the last %d episodes after %d PPO "
                         "updates, %d env steps", stats["success"], len(self.outcomes),
                         self.ppo_updates, steps)
                self.done = True
                return
            if steps >= p.max_env_steps:
                log.info("stopping: the env-step budget %d is spent (success %.3f)",
                         p.max_env_steps, stats["success"])
                self.done = True
                return
