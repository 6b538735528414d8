"""The run's shared state in Redis as the learner keeps it: phase, step counts, PPO's group.

Every call retries Redis with capped backoff (:func:`common.redis_io.with_retry`, the helper
the other roles use) until Redis answers or the learner is asked to stop: an outage or a
restart of Redis pauses the learner, it never kills it.

The learner is the only writer of the control hash, and Redis may lose it (a FLUSHALL, a
wiped volume, an embedded Redis without its AOF). :meth:`RunState.ensure` notices that —
``phase`` is missing — and puts the run back: the phase, the steps trained on, and the env
steps counted so far, *added* to whatever actors counted since the loss (they ``INCRBY``
from zero), so the count goes on instead of restarting. The same step carries a
checkpoint's count over onto a fresh Redis when a learner resumes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from common import keys
from common.config import ClusterConfig
from common.ledger import Ledger
from common.lifecycle import RateLimitedLog
from common.metrics import LearnerMetrics
from common.redis_io import RetryPolicy, ensure_group, with_retry

log = logging.getLogger(__name__)
T = TypeVar("T")

PATIENT = RetryPolicy(attempts=sys.maxsize, base=0.1, cap=5.0)
"""The learner waits out any outage (until stopped): its work is worth more than a restart."""
CHECK_EVERY_S = 1.0
"""How often :meth:`RunState.ensure` looks at the control hash (and reads the env steps)."""


@dataclass
class Progress:
    """The run's progress as the learner counts it; kept in its checkpoint.

    One object shared by both phases and the publisher: the publisher puts ``phase`` and
    ``memup_steps`` back into Redis when Redis lost them.
    """

    phase: int  #: 1 memory only (MemUP), 2 policy (PPO; joint mode also trains the memory)
    memup_updates: int = 0
    memup_steps: int = 0  #: env steps trained on by MemUP updates (repeats counted)
    ppo_updates: int = 0
    env_steps_trained: int = 0  #: env steps trained on by PPO updates
    done: bool = False  #: the run reached its goal or spent its budget


class RunState:
    """The learner's view of the run's Redis state; see the module docstring."""

    def __init__(self, config: ClusterConfig, r: redis.Redis, metrics: LearnerMetrics,
                 stop: threading.Event, ledger: Ledger) -> None:
        self.config, self.r, self.metrics, self.stop, self.ledger = (
            config, r, metrics, stop, ledger)
        self.run = config.run.name
        self.env_steps_seen = 0  #: the newest env-step count read (kept in checkpoints)
        self.next_check = 0.0
        self.said = RateLimitedLog(log)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, retried through any Redis outage until it succeeds or the learner stops.

        Raises:
            common.redis_io.ServiceUnavailable: the learner was stopped during an outage.
        """
        return with_retry(fn, retry=PATIENT, what=what, on_error=self._failed, stop=self.stop)

    def _failed(self, kind: str) -> None:
        self.metrics.redis_errors_total.labels(kind=kind).inc()
        self.said.warning(kind, "Redis call failed (%s); retrying with backoff", kind)

    def env_steps(self) -> int:
        """Env steps all actors of the run have published (the budget counts these)."""
        raw = self.call(lambda: self.r.get(keys.env_steps_key(self.run)), "reading env steps")
        self.env_steps_seen = max(self.env_steps_seen, int(raw or 0))
        return self.env_steps_seen

    def set_control(self, **fields: int) -> None:
        """Sets fields of the control hash (``keys.CONTROL_FIELDS``)."""
        unknown = set(fields) - set(keys.CONTROL_FIELDS)
        if unknown:  # a typo would write a field no reader looks at
            raise ValueError(f"not fields of the control hash: {sorted(unknown)}")
        self.call(lambda: self.r.hset(keys.control_key(self.run), mapping=fields),
                  "writing the control hash")

    def ensure(self, phase: int, trained_steps: int, force: bool = False) -> bool:
        """Puts the run's state back if Redis lost it; True when it did (the caller then
        publishes its weights again). Looks at most every second unless ``force``."""
        now = time.monotonic()
        if not force and now < self.next_check:
            return False
        self.next_check = now + CHECK_EVERY_S
        control = keys.control_key(self.run)
        if not self.call(lambda: self.r.hsetnx(control, keys.CONTROL_PHASE, phase),
                         "checking the phase"):
            self.env_steps()
            return False
        carried = self.env_steps_seen
        counted = self.call(lambda: self.r.incrby(keys.env_steps_key(self.run), carried),
                            "carrying the env steps over")
        self.env_steps_seen = int(counted)
        self.set_control(trained_steps=trained_steps)
        if carried or trained_steps:
            log.warning("Redis had lost the run's state: phase %d, %d env steps (%d counted "
                        "since) and %d trained steps put back", phase, counted, counted - carried,
                        trained_steps)
        return True

    def begin_ppo(self) -> None:
        """Creates the ``ppo`` group at the stream's end before phase II is announced, so
        every episode played for PPO is in it (and records where it starts)."""
        stream = keys.episodes_stream(self.run)
        self.call(lambda: ensure_group(self.r, stream, keys.PPO_GROUP, "$"),
                  "creating the ppo group")
        if self.ledger.on:
            groups = self.call(lambda: self.r.xinfo_groups(stream), "reading the ppo group")
            start = next(g["last-delivered-id"] for g in groups
                         if g["name"] in (keys.PPO_GROUP, keys.PPO_GROUP.encode()))
            self.ledger.record("ppo_start", id=start.decode() if isinstance(start, bytes)
                               else start)
