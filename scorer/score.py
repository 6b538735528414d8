"""The scoring loop: done episodes in, marks and replay-window entries out, then the ack.

A scorer reads "episode done" entries through the ``scorers`` consumer group (its own
pending entries first, after a restart), runs the EMA detector over each episode without
gradient, writes the mark, adds the episode to the replay window and only then acks.
Scoring is idempotent: an episode that already has a mark is acked and skipped. A janitor
claims entries another scorer left pending for too long. Bad entries are counted by
reason, copied to the dead-letter stream and acked, so they never block the group.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import redis
import torch

from common import keys
from common.config import ClusterConfig
from common.errors import WireError
from common.ledger import Ledger
from common.lifecycle import Backoff, RateLimitedLog
from common.metrics import ScorerMetrics
from common.models import DETECTOR, detector_parts, load_flat
from common.redis_io import ack, ensure_group, read_group, reclaim_idle, stream_stats
from common.watcher import WeightsWatcher
from common.wire import EpisodeDone, Mark, encode
from memup.detector import SurpriseDetector, TargetRule
from memup.episode import Episode
from scorer.dead_letter import dead_letter
from scorer.episodes import EpisodeUnavailable, load_done, load_steps, to_episode
from tasks.registry import task_for

log = logging.getLogger(__name__)

OUTCOMES_KEPT = 1000


class ScoringLoop:
    """Scores episodes as consumer ``consumer`` of the scorers group until ``stop`` is set."""

    def __init__(self, config: ClusterConfig, consumer: str, r: redis.Redis,
                 metrics: ScorerMetrics, stop: threading.Event,
                 device: torch.device | str = "cpu") -> None:
        self.config, self.consumer, self.r, self.metrics, self.stop = (
            config, consumer, r, metrics, stop)
        self.run_id = config.run.name
        self.stream = keys.episodes_stream(self.run_id)
        self.task = task_for(config)
        nets = self.task.networks(config)
        sc = config.scorer
        self.detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind,
                                         decay=config.memup.ema_decay, chunk=sc.chunk,
                                         group=sc.group, device=device)
        self.rng = np.random.default_rng(config.run.seed)
        self.version = 0
        self.watcher = WeightsWatcher(r, self.run_id, DETECTOR, 0.5)
        self.draining = True  # our own pending entries first: a restart resumes its work
        self.next_janitor = 0.0
        self.phase = 1
        self.scored_steps = 0  #: steps of the episodes admitted to the window
        self.said = RateLimitedLog(log)
        self.ledger = Ledger.from_env("scorer")
        ensure_group(r, self.stream, keys.SCORERS_GROUP, "0")

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Ticks until ``stop``; rides out Redis outages with backoff (counted, logged)."""
        self.watcher.start()
        backoff = Backoff(base=0.2, cap=10.0)
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                    backoff.reset()
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    kind = "timeout" if isinstance(exc, redis.TimeoutError) else "connection"
                    self.metrics.redis_errors_total.labels(kind=kind).inc()
                    delay = backoff.next()
                    self.said.warning(kind, "Redis unreachable (%s); retrying in %.1fs", exc,
                                      delay)
                    self.stop.wait(delay)
        finally:
            self.watcher.stop()

    def tick(self) -> int:
        """One read-score-ack round; returns the number of entries handled."""
        found = self.watcher.take()
        if found is not None:
            load_flat(detector_parts(self.detector.memory, self.detector.predictor),
                      found[1])
            self.version = found[0]
            self.metrics.detector_version.set(self.version)
        group = self.config.scorer.group
        entries: list[tuple[str, dict[bytes, bytes]]] = []
        if time.monotonic() >= self.next_janitor:
            self._janitor(entries)
        if self.draining:
            result = read_group(self.r, self.stream, keys.SCORERS_GROUP, self.consumer,
                                count=group, block_ms=None, pending=True)
            self.draining = bool(result.entries or result.trimmed)
        else:
            result = read_group(self.r, self.stream, keys.SCORERS_GROUP, self.consumer,
                                count=group, block_ms=200, pending=False)
        self._note(result)
        entries += result.entries
        if entries:
            self.process(entries)
        return len(entries)

    def _janitor(self, entries: list[tuple[str, dict[bytes, bytes]]]) -> None:
        sc = self.config.scorer
        self.next_janitor = time.monotonic() + sc.janitor_period_s
        claimed = reclaim_idle(self.r, self.stream, keys.SCORERS_GROUP, self.consumer,
                               min_idle_ms=int(sc.janitor_idle_s * 1000), count=sc.group)
        self.metrics.entries_reclaimed_total.inc(len(claimed.entries))
        self._note(claimed)
        entries += claimed.entries
        stats = stream_stats(self.r, self.stream, keys.SCORERS_GROUP)
        self.metrics.stream_length_entries.labels(stream="episodes").set(stats["length"])
        self.metrics.stream_pending_entries.labels(group=keys.SCORERS_GROUP).set(stats["pending"])
        phase = self.r.hget(keys.control_key(self.run_id), keys.CONTROL_PHASE)
        self.phase = int(phase) if phase else 1

    def _note(self, result) -> None:  # type: ignore[no-untyped-def]
        if result.trimmed:
            self.metrics.entries_trimmed_total.inc(len(result.trimmed))
        if result.group_recreated:
            log.warning("the %s group was missing (Redis lost its data?); recreated it",
                        keys.SCORERS_GROUP)

    # -- one batch --------------------------------------------------------------------

    def process(self, entries: list[tuple[str, dict[bytes, bytes]]]) -> None:
        """Loads, scores, marks and acks a batch of entries."""
        limit = self.config.redis.max_frame_bytes
        todo: list[tuple[str, EpisodeDone, Episode]] = []
        seen: set[str] = set()  # a publish retried after a lost reply can repeat an entry
        for entry_id, fields in entries:
            try:
                done = load_done(self.r, self.run_id, fields, limit)
                if done.episode in seen or self.r.exists(keys.mark_key(self.run_id,
                                                                       done.episode)):
                    self.metrics.episodes_duplicate_total.inc()
                    ack(self.r, self.stream, keys.SCORERS_GROUP, [entry_id])
                    continue
                steps = load_steps(self.r, self.run_id, done, limit)
                todo.append((entry_id, done, to_episode(steps, self.task)))
                seen.add(done.episode)
            except (WireError, EpisodeUnavailable) as exc:
                self._reject(entry_id, fields, exc)
        if not todo:
            return
        if self.phase >= 2 and self.config.ppo.mode in ("frozen", "lstm"):
            # No MemUP training any more (or ever): PPO needs the episodes, not marks.
            self._admit(todo, None)
            return
        started = time.perf_counter()
        surprise, _ = self.detector.score([ep for _, _, ep in todo])
        self.metrics.score_duration_seconds.observe(time.perf_counter() - started)
        self._admit(todo, surprise)

    def _admit(self, todo: list[tuple[str, EpisodeDone, Episode]],
               surprise: list[np.ndarray] | None) -> None:
        sc, run = self.config.scorer, self.run_id
        pipe = self.r.pipeline(transaction=True)
        if surprise is not None:
            rule = TargetRule(top_k=sc.top_k, current=sc.current, spacing=sc.target_spacing)
            marked = rule.select(surprise, [len(ep) for _, _, ep in todo], self.rng)
            for i, ((_, done, ep), targets) in enumerate(zip(todo, marked)):
                mark = Mark(episode=done.episode, surprise=surprise[i].astype(np.float32),
                            targets=targets, scorer_version=self.version)
                pipe.set(keys.mark_key(run, done.episode), encode(mark))
                outcomes = self.task.hits(ep.labels, surprise[i])
                if outcomes:
                    pipe.lpush(keys.outcomes_key(run),
                               *[f"{self.version}:{right}" for right in outcomes])
                for s in surprise[i][:: max(1, len(ep) // 64)]:  # a sample keeps this cheap
                    self.metrics.surprise.observe(float(s))
                self.metrics.targets_marked_total.inc(targets.size)
            pipe.ltrim(keys.outcomes_key(run), 0, OUTCOMES_KEPT - 1)
        now = time.time()
        for entry_id, _, _ in todo:  # a stream id starts with its XADD time in milliseconds
            self.metrics.episode_wait_seconds.observe(max(0.0, now - int(entry_id.split("-")[0])
                                                          / 1000))
        for _, done, _ in todo:
            pipe.persist(keys.fragments_key(run, done.episode))  # the window owns it now
            pipe.zadd(keys.replay_key(run), {done.episode: now})
        pipe.xack(self.stream, keys.SCORERS_GROUP, *[entry_id for entry_id, _, _ in todo])
        pipe.execute()
        self.ledger.episodes("scored", [done.episode for _, done, _ in todo])
        self.metrics.episodes_scored_total.inc(len(todo))
        self.scored_steps += sum(len(ep) for _, _, ep in todo)
        self.metrics.scored_through(now)
        self._trim_window()

    def _trim_window(self) -> None:
        run = self.run_id
        excess = self.r.zcard(keys.replay_key(run)) - self.config.scorer.replay_episodes
        if excess > 0:
            evicted = [m.decode() for m, _ in self.r.zpopmin(keys.replay_key(run), excess)]
            if evicted:
                self.r.delete(*[keys.fragments_key(run, e) for e in evicted],
                              *[keys.mark_key(run, e) for e in evicted])
                self.metrics.replay_evicted_total.inc(len(evicted))
        self.metrics.replay_episodes.set(self.r.zcard(keys.replay_key(run)))

    def _reject(self, entry_id: str, fields: dict[bytes, bytes],
                exc: WireError | EpisodeUnavailable) -> None:
        reason = exc.reason
        if isinstance(exc, WireError):
            self.metrics.rejected_messages_total.labels(reason=reason).inc()
        else:
            self.metrics.episodes_dropped_total.labels(reason=reason).inc()
        self.said.warning(reason, "episodes-stream entry %s refused (%s): %s; moved to the "
                          "dead-letter stream", entry_id, reason, exc)
        dead_letter(self.r, self.config, source="episodes", entry=entry_id, reason=reason,
                    detail=str(exc), frame=fields.get(keys.STREAM_FIELD, b""))
        ack(self.r, self.stream, keys.SCORERS_GROUP, [entry_id])
