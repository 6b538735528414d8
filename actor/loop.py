"""The actor's env loop: n envs stepped together, batched inference, fragments handed off.

Per step: build every env's memory input, ask the policy for all actions at once, step
each env, append the step to that env's open fragment. A fragment is handed to the
publisher when it holds ``fragment_steps`` steps or its episode ended; the last one goes
with the episode's "done" event. A crashing env is recreated with backoff and its partial
episode abandoned (its published fragments expire in Redis); the actor gives up only after
``max_env_failures`` crashes in a row.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium
import numpy as np

from actor.policy import ActingPolicy
from actor.publish import FragmentPublisher
from common.config import ClusterConfig
from common.lifecycle import Backoff
from common.metrics import ActorMetrics
from common.wire import EpisodeDone, Fragment
from tasks.base import Task

log = logging.getLogger(__name__)

EnvFactory = Callable[[int], gymnasium.Env]


class EnvFailure(RuntimeError):
    """An env crashed ``max_env_failures`` times in a row: the actor process should exit."""


@dataclass
class _Open:
    """The running episode of one env slot and its not yet published steps."""

    episode: str
    index: int = 0  #: fragments published so far
    first_step: int = 0  #: episode step of the first buffered row
    steps: int = 0
    total_return: float = 0.0
    version: int = 0  #: policy version at the episode's start
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in ROW_FIELDS})


ROW_FIELDS = ("obs", "action", "reward", "log_prob", "value")


class ActorLoop:
    """Steps ``config.actor.envs`` envs until ``stop`` is set (or ``max_steps``).

    Args:
        config: the run's config.
        actor_id: this replica's stable name, e.g. ``actor-0``.
        make_env: builds the env of slot ``i``.
        task: the run's task (obs layout, step inputs, what counts as a success).
        policy: acts for all envs.
        publisher: the started fragment publisher.
        metrics: the actor's metrics.
        stop: set to end the loop.
    """

    def __init__(self, config: ClusterConfig, actor_id: str, make_env: EnvFactory,
                 task: Task, policy: ActingPolicy, publisher: FragmentPublisher,
                 metrics: ActorMetrics, stop: threading.Event) -> None:
        self.config = config
        self.actor_id = actor_id
        self.make_env = make_env
        self.task = task
        self.spec = task.spec
        self.policy = policy
        self.publisher = publisher
        self.metrics = metrics
        self.stop = stop
        self.boot = secrets.token_hex(3)  # episode ids stay unique across restarts
        self.n = config.actor.envs
        self.envs = [make_env(i) for i in range(self.n)]
        self.seed = config.run.seed * 100_003 + zlib.crc32(actor_id.encode())
        self.seeded = [False] * self.n
        self.episodes_started = 0
        self.episodes_done = 0
        self.successes = 0
        self.env_steps = 0
        self.failures = [0] * self.n
        self.backoffs = [Backoff(base=0.1, cap=5.0) for _ in range(self.n)]
        self.obs = np.zeros((self.n, *self.spec.obs_shape), dtype=self.spec.obs_dtype)
        self.prev_action = np.full(self.n, -1, dtype=np.int64)
        self.prev_reward = np.zeros(self.n, dtype=np.float32)
        self.open: list[_Open] = [self._reset(i) for i in range(self.n)]

    def _reset(self, slot: int) -> _Open:
        # Each env is seeded once, at its first reset, distinctly per actor and slot (31 bits:
        # some game engines take an unsigned 32-bit seed).
        seed = None if self.seeded[slot] else (self.seed * 1000 + slot) % 2**31
        self.seeded[slot] = True
        obs, _ = self.envs[slot].reset(seed=seed)
        self.obs[slot] = obs
        self.prev_action[slot] = -1
        self.prev_reward[slot] = 0.0
        self.episodes_started += 1
        episode = f"{self.actor_id}-{self.boot}-{self.episodes_started}"
        return _Open(episode=episode, version=self.policy.version)

    def _flush(self, slot: int, final: bool) -> None:
        ep = self.open[slot]
        rows = ep.rows
        arrays = {
            "obs": np.asarray(rows["obs"], dtype=self.spec.obs_dtype),
            "action": np.asarray(rows["action"], dtype=np.int64),
            "reward": np.asarray(rows["reward"], dtype=np.float32),
            "log_prob": np.asarray(rows["log_prob"], dtype=np.float32),
            "value": np.asarray(rows["value"], dtype=np.float32),
        }
        fragment = Fragment(run=self.config.run.name, actor=self.actor_id, episode=ep.episode,
                            index=ep.index, first_step=ep.first_step, arrays=arrays,
                            policy_version=ep.version, final=final)
        done = None
        if final:
            done = EpisodeDone(episode=ep.episode, actor=self.actor_id, length=ep.steps,
                               return_=ep.total_return, policy_version=ep.version,
                               fragments=ep.index + 1)
        self.publisher.put(fragment, done)
        ep.index += 1
        ep.first_step = ep.steps
        ep.rows = {k: [] for k in ROW_FIELDS}

    def replace_envs(self) -> None:
        """Closes every env and builds new ones with ``make_env``; open episodes are
        abandoned (their published fragments expire in Redis)."""
        for slot, env in enumerate(self.envs):
            env.close()
            self.envs[slot] = self.make_env(slot)
            self.open[slot] = self._reset(slot)

    def _crashed(self, slot: int, exc: Exception) -> None:
        self.failures[slot] += 1
        self.metrics.env_restarts_total.inc()
        if self.failures[slot] >= self.config.actor.max_env_failures:
            raise EnvFailure(f"env slot {slot} crashed {self.failures[slot]} times in a row, "
                             f"last: {exc!r}") from exc
        delay = self.backoffs[slot].next()
        log.warning("env slot %d crashed (%r); abandoning episode %s, recreating in %.2fs",
                    slot, exc, self.open[slot].episode, delay)
        self.stop.wait(delay)
        try:
            self.envs[slot].close()
        except Exception:  # a broken env may fail to close; it is replaced either way
            pass
        self.envs[slot] = self.make_env(slot)
        self.seeded[slot] = True  # unseeded: a recreated env must not replay old episodes
        self.open[slot] = self._reset(slot)

    def step(self) -> None:
        """One step of every env."""
        first = self.prev_action < 0
        started = time.perf_counter()
        inputs = self.task.step_inputs(self.obs, self.prev_action, self.prev_reward)
        actions, log_probs, values = self.policy.act(inputs, first)
        inferred = time.perf_counter()
        self.metrics.inference_duration_seconds.observe(inferred - started)
        for i in range(self.n):
            ep = self.open[i]
            try:
                obs, reward, terminated, truncated, _ = self.envs[i].step(int(actions[i]))
            except Exception as exc:  # any env failure: recreate, never take the actor down
                self._crashed(i, exc)
                continue
            self.failures[i] = 0
            self.backoffs[i].reset()
            rows = ep.rows
            rows["obs"].append(self.obs[i].copy())
            rows["action"].append(int(actions[i]))
            rows["reward"].append(float(reward))
            rows["log_prob"].append(float(log_probs[i]))
            rows["value"].append(float(values[i]))
            ep.steps += 1
            ep.total_return += float(reward)
            self.prev_action[i] = actions[i]
            self.prev_reward[i] = reward
            self.obs[i] = obs
            if terminated or truncated:
                self._flush(i, final=True)
                self._episode_finished(ep, float(reward))
                self.open[i] = self._reset(i)
            elif len(rows["action"]) >= self.config.actor.fragment_steps:
                self._flush(i, final=False)
        self.env_steps += self.n
        self.metrics.env_steps_total.inc()
        self.metrics.frames_total.inc(self.n)
        self.metrics.env_step_duration_seconds.observe(time.perf_counter() - inferred)

    def _episode_finished(self, ep: _Open, final_reward: float) -> None:
        success = self.task.succeeded(final_reward, ep.steps, ep.total_return)
        self.episodes_done += 1
        self.successes += success
        self.metrics.episode_finished("success" if success else "failure", ep.total_return)

    def run(self, max_steps: int | None = None,
            on_step: Callable[[], None] | None = None) -> None:
        """Steps until ``stop`` is set or ``max_steps`` batched steps were taken."""
        taken = 0
        while not self.stop.is_set() and (max_steps is None or taken < max_steps):
            if on_step is not None:
                on_step()
            if self.publisher.paused:
                self.stop.wait(0.02)
                continue
            self.step()
            taken += 1
