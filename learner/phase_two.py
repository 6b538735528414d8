"""Phase II: PPO trains the policy and value heads on on-policy rollouts.

In ``frozen`` mode phase I's EMA memory becomes the policy's frozen recurrent core; in
``joint`` mode MemUP updates (:class:`PhaseOne`) run between PPO updates and the policy's
memory copy follows the trained memory by soft updates; ``lstm`` is the PPO-LSTM baseline
(no MemUP at all). A new policy version is published after every update.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import ClusterConfig
from common.ledger import Ledger
from common.metrics import LearnerMetrics
from common.models import POLICY, policy_parts
from common.runlog import RunLog
from learner.feed import SegmentFeed
from learner.phase_one import PhaseOne
from learner.publishing import Publisher
from learner.rollouts import rollout_batch
from learner.run_state import Progress, RunState
from rl.policy import soft_update
from rl.ppo import PPOConfig, PPOTrainer
from tasks.base import Task

log = logging.getLogger(__name__)


class PhaseTwo:
    """Owns the policy, its memory copy and the PPO optimiser; uses ``one`` in joint mode.

    Args:
        on_update: called after each update with True: the update must be saved before its
            acks leave.
    """

    def __init__(self, config: ClusterConfig, task: Task, feed: SegmentFeed,
                 metrics: LearnerMetrics, run_log: RunLog, stop: threading.Event,
                 state: RunState, progress: Progress, publisher: Publisher, ledger: Ledger,
                 one: PhaseOne, on_update: Callable[[bool], None], device: torch.device) -> None:
        self.config, self.task, self.feed, self.metrics, self.run_log, self.stop = (
            config, task, feed, metrics, run_log, stop)
        self.state, self.progress, self.publisher, self.ledger, self.one = (
            state, progress, publisher, ledger, one)
        self.on_update, self.device = on_update, device
        p = config.ppo
        self.policy = task.policy(config).to(device)
        self.policy_memory = copy.deepcopy(one.nets.memory).requires_grad_(False)
        self.ppo = PPOTrainer(self.policy, PPOConfig(
            lr=p.lr, clip=p.clip, value_coef=p.value_coef, entropy_coef=p.entropy_coef,
            epochs=p.epochs, minibatch_episodes=p.minibatch_episodes, gamma=p.gamma,
            lam=p.lam), device)
        self.outcomes: deque[int] = deque(maxlen=p.success_episodes)
        self.last_lag = 0

    def weights(self) -> Mapping[str, nn.Module]:
        """What ``policy`` weights are published from: the memory copy (none for the
        PPO-LSTM baseline) and the heads."""
        memory = None if self.config.ppo.mode == "lstm" else self.policy_memory
        return policy_parts(memory, self.policy)

    def success(self) -> float:
        """The success rate over the last ``ppo.success_episodes`` episodes (0 before any)."""
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def start(self) -> None:
        """Freezes the EMA memory (the one that reached the target) as the policy's core."""
        detector = self.one.detector
        self.policy_memory.load_state_dict(detector.memory.state_dict())
        adopt = getattr(self.policy, "adopt_phase_one", None)
        if adopt is not None:  # e.g. heads with a frame CNN start from phase I's networks
            adopt(detector.memory, detector.predictor, self.config.ppo.init_encoder)
        self.progress.phase = 2
        self.publisher.publish(POLICY)
        self.state.begin_ppo()
        self.publisher.set_control(phase=2)
        self.metrics.phase.set(2)

    def ppo_update(self) -> dict[str, Any] | None:
        """One PPO update on ``ppo.episodes_per_update`` fresh rollouts (None if stopping)."""
        p = self.config.ppo
        version = self.publisher.versions[POLICY]
        rollouts = []
        while len(rollouts) < p.episodes_per_update and not self.stop.is_set():
            self.publisher.keep_run_state()
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
        self.progress.ppo_updates += 1
        self.ledger.episodes("trained", [r.episode for r in rollouts],
                             inc=self.feed.incarnation, u=self.progress.ppo_updates)
        steps = int(batch.mask.sum())
        self.progress.env_steps_trained += steps
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
        self.publisher.publish(POLICY)
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

    def run(self) -> None:
        """Trains until the success target or the env-step budget (then ``progress.done``),
        or ``stop``."""
        p, progress = self.config.ppo, self.progress
        if self.publisher.versions[POLICY] == 0:
            self.publisher.publish(POLICY)
        self.state.begin_ppo()  # idempotent: a restarted learner finds its group
        self.publisher.set_control(phase=2)
        self.metrics.phase.set(2)
        log.info("phase II: PPO (%s) on %d-episode batches", p.mode, p.episodes_per_update)
        while not self.stop.is_set():
            if p.mode == "joint":
                for _ in range(p.memup_updates_per_ppo):
                    if self.one.memup_update() is None:
                        return
                    soft_update(self.policy_memory, self.one.nets.memory, p.soft_keep)
            stats = self.ppo_update()
            if stats is None:
                return
            steps = self.publisher.env_steps()
            self.run_log.log({"phase": 2, "ppo_update": progress.ppo_updates,
                              "env_steps": steps, "memup_update": progress.memup_updates,
                              **stats})
            full = len(self.outcomes) == self.outcomes.maxlen
            if full and stats["success"] >= p.target_success:
                log.info("done: success rate %.3f over the last %d episodes after %d PPO "
                         "updates, %d env steps", stats["success"], len(self.outcomes),
                         progress.ppo_updates, steps)
                progress.done = True
                return
            if steps >= p.max_env_steps:
                log.info("stopping: the env-step budget %d is spent (success %.3f)",
                         p.max_env_steps, stats["success"])
                progress.done = True
                return
