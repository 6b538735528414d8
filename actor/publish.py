"""Publishing fragments from a background thread, so the env loop never waits on Redis.

The env loop hands finished fragments to :meth:`FragmentPublisher.put` and goes on. The
thread writes whatever is queued in one MULTI transaction: ``RPUSH`` of each fragment with
its key's TTL refreshed (an abandoned episode expires by itself), and for an episode's last
fragment the ``XADD`` of its "episode done" entry, so a scorer never sees a done episode
whose fragments are missing. While Redis is unreachable the thread retries with backoff
and the queue fills; past its bound the oldest fragment is dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import redis

from common import keys
from common.config import ClusterConfig
from common.ledger import Ledger
from common.lifecycle import Backoff
from common.metrics import ActorMetrics
from common.wire import EpisodeDone, Fragment, encode
from common.wire_codec import WireCodec

log = logging.getLogger(__name__)

"""Field of an episodes-stream entry holding the encoded :class:`EpisodeDone`."""


class FragmentPublisher(threading.Thread):
    """Owns the Redis writes of one actor.

    Args:
        r: the actor's Redis client.
        config: the run's config (TTL, stream cap, queue bound, frame limit, codec).
        metrics: the actor's metrics.
    """

    def __init__(self, r: redis.Redis, config: ClusterConfig, metrics: ActorMetrics) -> None:
        super().__init__(name="fragment-publisher", daemon=True)
        self.r = r
        self.config = config
        self.metrics = metrics
        self.run_id = config.run.name
        self.codec = WireCodec.from_config(config.wire)
        self._queue: deque[tuple[Fragment, EpisodeDone | None]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self.published = 0
        self.paused = False  #: consumers are behind: the env loop should wait
        self._next_check = 0.0
        self.ledger = Ledger.from_env("actor")

    @property
    def queued(self) -> int:
        """Fragments waiting to be written."""
        return len(self._queue)

    def put(self, fragment: Fragment, done: EpisodeDone | None = None) -> None:
        """Queues a fragment (and, with the episode's last one, its done event); never blocks."""
        with self._cond:
            if len(self._queue) >= self.config.actor.queue_fragments:
                self._queue.popleft()
                self.metrics.fragments_dropped_total.labels(reason="queue_full").inc()
            self._queue.append((fragment, done))
            self.metrics.publish_queue_fragments.set(len(self._queue))
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Flushes what is queued (for at most ``timeout`` seconds) and stops the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self.join(timeout)
        if self._queue:
            self.metrics.fragments_dropped_total.labels(reason="shutdown").inc(len(self._queue))
            log.warning("actor stopped with %d fragments unpublished", len(self._queue))

    def run(self) -> None:
        backoff = Backoff(base=0.05, cap=2.0)
        while True:
            if time.monotonic() >= self._next_check:
                self._check_backlog()
            with self._cond:
                if not self._queue:
                    if self._closing:
                        return
                    self._cond.wait(0.5)  # wakes for backlog checks while the loop is paused
                    continue
                batch = list(self._queue)
            try:
                self._write(batch)
            except redis.RedisError as exc:
                kind = "connection" if isinstance(exc, redis.ConnectionError) else "error"
                self.metrics.redis_errors_total.labels(kind=kind).inc()
                if self._closing and backoff.failures >= 3:
                    return
                delay = backoff.next()
                log.warning("publishing %d fragments failed (%s); retrying in %.2fs",
                            len(batch), exc, delay)
                time.sleep(delay)
                continue
            backoff.reset()
            with self._cond:
                # Only what was written leaves the queue; put() may have dropped some meanwhile.
                for item in batch:
                    if self._queue and self._queue[0] is item:
                        self._queue.popleft()
                self.metrics.publish_queue_fragments.set(len(self._queue))

    def _check_backlog(self) -> None:
        """Pauses the env loop while the consumers of our episodes are far behind.

        Like Reverb's rate limiter: producing faster than scorers (phase I) or the learner
        (PPO) consume only burns CPU on a shared machine and makes data stale.
        """
        self._next_check = time.monotonic() + 0.5
        try:
            phase, trained = self.r.hmget(keys.control_key(self.run_id),
                                          [keys.CONTROL_PHASE, keys.CONTROL_TRAINED_STEPS])
            produced = self.r.get(keys.env_steps_key(self.run_id))
            ppo_phase = phase == b"2"  # PPO consumes the episodes (all modes)
            group = keys.PPO_GROUP if ppo_phase else keys.SCORERS_GROUP
            behind = backlog(self.r, keys.episodes_stream(self.run_id), group,
                             self.config.actor.max_backlog)
        except redis.RedisError:
            return  # the write path counts and retries Redis errors
        ahead = False
        if not ppo_phase:
            # Phase I: each env step is trained on about replay_ratio times, then new ones.
            m = self.config.memup
            allowed = (m.warmup_episodes * self.config.task.length
                       + int(trained or 0) / m.replay_ratio)
            ahead = int(produced or 0) > allowed
        self.paused = ahead or (behind is not None and behind >= self.config.actor.max_backlog)

    def _write(self, batch: list[tuple[Fragment, EpisodeDone | None]]) -> None:
        started = time.perf_counter()
        ttl = self.config.redis.fragment_ttl_s
        limit = self.config.redis.max_frame_bytes
        pipe = self.r.pipeline(transaction=True)
        episodes = []  # (episode, index of its XADD's reply)
        for fragment, done in batch:
            key = keys.fragments_key(self.run_id, fragment.episode)
            pipe.rpush(key, encode(fragment, limit, self.codec))
            pipe.expire(key, ttl)
            if done is not None:
                # A run-wide step count: the budget and the rate limit read it.
                pipe.incrby(keys.env_steps_key(self.run_id), done.length)
                episodes.append((done.episode, len(pipe.command_stack)))
                pipe.xadd(keys.episodes_stream(self.run_id),
                          {keys.STREAM_FIELD: encode(done, limit)},
                          maxlen=self.config.redis.stream_maxlen, approximate=True)
        replies = pipe.execute()
        for episode, at in episodes:
            entry_id = replies[at]
            self.ledger.record("produced", ep=episode,
                               id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
        elapsed = time.perf_counter() - started
        for _ in batch:
            self.metrics.fragment_publish_duration_seconds.observe(elapsed / len(batch))
        self.metrics.fragments_published_total.inc(len(batch))
        self.published += len(batch)


def backlog(r: redis.Redis, stream: str, group: str, limit: int) -> int | None:
    """Entries of ``group`` not yet acked (pending + undelivered), counted up to ``limit``.

    None when the group does not exist yet. Works on Redis 6.2, which lacks XINFO's lag.
    """
    for info in r.xinfo_groups(stream) if r.exists(stream) else []:
        if info["name"].decode() == group:
            last = info["last-delivered-id"].decode()
            undelivered = r.xrange(stream, min=f"({last}", count=limit)
            return int(info["pending"]) + len(undelivered)
    return None
