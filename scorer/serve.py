"""The segment server: a ROUTER answering learners with segments and on-policy rollouts.

Segment requests are self-contained ("lane 3: episode E from step 120", or "lane 5: a new
episode"), so any scorer replica can answer any request; the server only caches assembled
episodes. The learner piggybacks the ids it trained on onto later requests. For PPO (served
only in phase II) the server reads the ``ppo`` group of the episodes stream and XACKs an
entry only once the learner acked its rollout. Every hand-out is leased to the learner's
incarnation (:mod:`scorer.handouts`): a restarted or silent learner's rollouts are served
again to the next one; a rollout lost in the hop is sent again after twice
``request_timeout_s``; one played by a policy older than the learner allows is dropped and
counted. Every frame from a peer is decoded with the size limit; a bad one is counted,
dead-lettered, and the server goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import numpy as np
import redis
import zmq

from common import keys
from common.config import ClusterConfig
from common.errors import WireError
from common.ledger import Ledger
from common.lifecycle import Backoff, HeartbeatThread, RateLimitedLog
from common.metrics import ScorerMetrics
from common.redis_io import ack, read_group
from common.segments import to_segment
from common.wire import Rollout, RolloutRequest, SegmentRequest, decode, encode
from common.wire_codec import WireCodec
from common.zmq_io import close, router
from memup.batch import lane_slice
from memup.episode import Episode
from scorer.dead_letter import dead_letter
from scorer.episodes import EpisodeUnavailable, load_done, load_marked, load_steps
from scorer.handouts import Handouts
from tasks.registry import task_for

log = logging.getLogger(__name__)

PHASE_CHECK_S = 1.0
"""How long the server trusts the run's phase it read (PPO is served in phase II only)."""


class SegmentServer:
    """Serves segments and rollouts on ``tcp://bind_host:port`` until ``stop`` is set.

    Args:
        config: the run's config.
        consumer: this replica's name (its endpoint key and ppo-group consumer name).
        r: a Redis client for this thread.
        metrics: the scorer's metrics.
        stop: set to end :meth:`run`.
    """

    def __init__(self, config: ClusterConfig, consumer: str, r: redis.Redis,
                 metrics: ScorerMetrics, stop: threading.Event) -> None:
        self.config, self.consumer, self.r, self.metrics, self.stop = (
            config, consumer, r, metrics, stop)
        self.run_id = config.run.name
        self.limit = config.redis.max_frame_bytes
        self.codec = WireCodec.from_config(config.wire)  # segments and rollouts
        self.task = task_for(config)
        self.ctx = zmq.Context.instance()
        sc = config.scorer
        self.sock, self.port = router(self.ctx, sc.bind_host, sc.port, self.limit,
                                      config.zmq.curve_keys,
                                      on_denied=metrics.auth_failures_total.inc)
        self.endpoint = f"tcp://{sc.advertise_host}:{self.port}"
        self.cache: OrderedDict[str, Episode] = OrderedDict()
        self.unacked: OrderedDict[str, float] = OrderedDict()  # segment id -> time served
        self.lane_served: dict[int, str] = {}  # lane -> the segment it was served last
        self.handouts = Handouts(sc.lease_s)
        self.ppo_draining = True
        self.phase, self.phase_read = 0, -PHASE_CHECK_S
        self.ledger = Ledger.from_env("scorer")
        self.stream = keys.episodes_stream(self.run_id)
        self.said = RateLimitedLog(log)
        key = keys.scorer_endpoint_key(self.run_id, consumer.split("-", 1)[1])
        ttl_ms = int(sc.endpoint_ttl_s * 1000)
        self.heartbeat = HeartbeatThread(lambda: r.set(key, self.endpoint, px=ttl_ms),
                                         interval=sc.endpoint_ttl_s / 3, name="endpoint")

    def run(self) -> None:
        """Registers the endpoint (with a heartbeat TTL) and answers until ``stop``."""
        self.heartbeat.start()
        log.info("%s: segment server on %s", self.consumer, self.endpoint)
        try:
            backoff = Backoff(base=0.2, cap=10.0)
            while not self.stop.is_set():
                try:
                    if self.sock.poll(50):
                        self.handle_one()
                    if self.handouts.credit:
                        self._pump_rollouts()
                    self._resend_overdue()
                    self._expire_leases()
                    backoff.reset()
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    # The request is lost with it; the learner asks again after its timeout.
                    self.metrics.redis_errors_total.labels(kind="connection").inc()
                    delay = backoff.next()
                    self.said.warning("redis", "Redis unreachable (%s); retrying in %.1fs",
                                      exc, delay)
                    self.stop.wait(delay)
        finally:
            self.heartbeat.stop()
            self.r.delete(keys.scorer_endpoint_key(self.run_id, self.consumer.split("-", 1)[1]))
            close(self.sock)

    def handle_one(self) -> None:
        """Receives and answers one request (or refuses it)."""
        parts = self.sock.recv_multipart(copy=True)
        if len(parts) != 2:
            self._refuse(parts[0] if parts else b"", b"".join(parts[1:]), "malformed",
                         f"expected 2 frames, got {len(parts)}")
            return
        peer, frame = parts
        try:
            msg = decode(frame, self.limit)
        except WireError as exc:
            self._refuse(peer, frame, exc.reason, str(exc))
            return
        if isinstance(msg, SegmentRequest):
            self._serve_segment(peer, msg)
        elif isinstance(msg, RolloutRequest):
            self._serve_rollouts(peer, msg)
        else:
            self._refuse(peer, frame, "unexpected_kind", f"a {msg.KIND} is not a request")

    def _refuse(self, peer: bytes, frame: bytes, reason: str, detail: str) -> None:
        self.metrics.rejected_messages_total.labels(reason=reason).inc()
        self.said.warning(reason, "refused a frame from a learner (%s): %s", reason, detail)
        dead_letter(self.r, self.config, source="segment_server", entry=peer.hex()[:32],
                    reason=reason, detail=detail, frame=frame)

    def _send(self, peer: bytes, frame: bytes) -> bool:
        try:
            self.sock.send_multipart([peer, frame], flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError as exc:  # the peer left (ROUTER_MANDATORY) or its queue is full
            self.said.warning("send", "could not reply to a learner: %s", exc)
            return False

    # -- MemUP segments -------------------------------------------------------------------

    def _episode(self, episode: str) -> Episode:
        ep = self.cache.get(episode)
        if ep is None:
            ep = load_marked(self.r, self.run_id, episode, self.task,
                             self.limit)
            self.cache[episode] = ep
            if len(self.cache) > self.config.scorer.cache_episodes:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(episode)
        return ep

    def _pick_new(self) -> tuple[str, Episode] | None:
        for _ in range(4):  # an episode may be evicted between the pick and the load
            member = self.r.zrandmember(keys.replay_key(self.run_id))
            if member is None:
                return None
            episode = member.decode()
            try:
                return episode, self._episode(episode)
            except EpisodeUnavailable:
                continue
            except WireError as exc:  # e.g. a mark written by another schema version
                self._refuse(b"", b"", exc.reason, f"stored episode {episode}: {exc}")
                self.r.zrem(keys.replay_key(self.run_id), episode)
                continue
        return None

    def _serve_segment(self, peer: bytes, req: SegmentRequest) -> None:
        self._claim(req.incarnation)
        for acked in req.acks:
            if self.unacked.pop(acked, None) is not None:
                self.metrics.segments_acked_total.inc()
        picked: tuple[str, Episode] | None = None
        offset = req.offset
        if req.episode is not None:
            try:
                picked = req.episode, self._episode(req.episode)
            except EpisodeUnavailable:
                picked = None  # evicted mid-walk: the lane continues with a new episode
            except WireError as exc:
                self._refuse(peer, b"", exc.reason, f"stored episode {req.episode}: {exc}")
            if picked is not None and offset >= len(picked[1]):
                picked = None
        if picked is None:
            offset = 0
            picked = self._pick_new()
            if picked is None:
                return  # nothing scored yet: the learner asks again after its timeout
        episode, ep = picked
        mem = self.config.memup
        piece = lane_slice(ep, offset, mem.rollout, mem.frequency)
        segment_id = f"{episode}.{offset}"
        segment = to_segment(piece, segment_id=segment_id, lane=req.lane, episode=episode,
                             rollout=mem.rollout)
        # A retry of the lane's unanswered request, not two lanes on one episode start.
        if self.lane_served.get(req.lane) == segment_id and segment_id in self.unacked:
            self.metrics.segments_redelivered_total.inc()
        if self._send(peer, encode(segment, self.limit, self.codec)):
            self.unacked[segment_id] = time.monotonic()
            self.unacked.move_to_end(segment_id)
            self.lane_served[req.lane] = segment_id
            if len(self.unacked) > 100_000:  # a learner that never acks must not grow us
                self.unacked.popitem(last=False)
            self.metrics.segments_served_total.inc()

    # -- leases -------------------------------------------------------------------------

    def _claim(self, incarnation: str) -> None:
        """Renews the requesting learner's lease; a new incarnation takes over everything."""
        previous = self.handouts.holder
        released = self.handouts.claim(incarnation)
        if previous and previous != incarnation:
            self._released("new_incarnation", released)
            log.info("a new learner (incarnation %s) replaced %s: %d rollouts it held are "
                     "served again", incarnation or "-", previous, released)

    def _released(self, reason: str, rollouts: int) -> None:
        """Counts released hand-outs; the segments the old holder never acked are forgotten
        (segment requests are self-contained: nothing waits on them)."""
        self.metrics.handouts_released_total.labels(kind="rollout", reason=reason).inc(rollouts)
        self.metrics.handouts_released_total.labels(kind="segment", reason=reason).inc(
            len(self.unacked))
        self.unacked.clear()
        self.lane_served.clear()

    def _expire_leases(self) -> None:
        if self.handouts.expired():
            holder = self.handouts.holder
            released = self.handouts.release()
            self._released("lease_expired", released)
            self.said.warning("lease", "learner %s silent for %.0fs: its lease ended, %d "
                              "rollouts it held are served again", holder,
                              self.handouts.lease_s, released)

    def _ppo_phase(self) -> bool:
        """Whether the run is in phase II (re-read from Redis at most once a second)."""
        now = time.monotonic()
        if now - self.phase_read >= PHASE_CHECK_S:
            raw = self.r.hget(keys.control_key(self.run_id), keys.CONTROL_PHASE)
            self.phase, self.phase_read = int(raw or 0), now
        return self.phase == 2

    # -- PPO rollouts ---------------------------------------------------------------------

    def _serve_rollouts(self, peer: bytes, req: RolloutRequest) -> None:
        """Takes the learner's acks and its credit; :meth:`_pump_rollouts` spends the credit."""
        if not self._ppo_phase():
            # PPO's queue is not open yet: a request now gets nothing (and is counted).
            self.metrics.rejected_messages_total.labels(reason="ppo_not_started").inc()
            self.said.warning("ppo_not_started", "a rollout request before phase II: ignored")
            return
        self._claim(req.incarnation)
        acked = self.handouts.acked(req.acks)
        if acked:
            ack(self.r, self.stream, keys.PPO_GROUP, acked)
            self.metrics.rollouts_acked_total.inc(len(acked))
        # The newest request states how many more rollouts the learner can take now.
        self.handouts.credit[peer] = (req.credit, req.policy_version, req.max_lag)
        self._pump_rollouts()

    def _pump_rollouts(self) -> None:
        """Sends rollouts to learners with credit left: those taken back first, then new
        entries of the ppo group (after a restart, this consumer's own pending ones)."""
        h = self.handouts
        for peer, (credit, version, max_lag) in list(h.credit.items()):
            sent = 0
            while sent < credit and h.returned and peer in h.credit:
                entry_id, fields = next(iter(h.returned.items()))
                del h.returned[entry_id]
                sent += self._send_rollout(peer, version, max_lag, entry_id, fields)
                self.metrics.rollouts_redelivered_total.inc()
            if sent < credit and peer in h.credit:
                result = read_group(self.r, self.stream, keys.PPO_GROUP, self.consumer,
                                    count=10_000 if self.ppo_draining else credit - sent,
                                    block_ms=None, pending=self.ppo_draining)
                if self.ppo_draining:  # one pass: what we held before a restart comes back
                    self.ppo_draining = False
                    for entry_id, fields in result.entries:
                        if not h.known(entry_id):
                            h.returned[entry_id] = fields
                    continue
                for entry_id, fields in result.entries:
                    if peer in h.credit:
                        sent += self._send_rollout(peer, version, max_lag, entry_id, fields)
                    else:  # that learner is gone: the rest wait for the next one too
                        h.returned[entry_id] = fields
            if peer in h.credit:
                h.credit[peer] = (credit - sent, version, max_lag)

    def _send_rollout(self, peer: bytes, version: int, max_lag: int, entry_id: str,
                      fields: dict[bytes, bytes]) -> bool:
        """Sends one ppo-group entry as a rollout; True if sent (else dropped and acked, or
        kept for the next learner when this one cannot be reached)."""
        done = None
        try:
            done = load_done(self.r, self.run_id, fields, self.limit)
            if done.policy_version < version - max_lag:
                self.metrics.rollouts_dropped_total.labels(reason="stale").inc()
                self.ledger.record("dropped", ep=done.episode, why="stale")
                ack(self.r, self.stream, keys.PPO_GROUP, [entry_id])
                return False
            steps = load_steps(self.r, self.run_id, done, self.limit)
        except WireError as exc:
            self._refuse(peer, fields.get(keys.STREAM_FIELD, b""), exc.reason, str(exc))
            ack(self.r, self.stream, keys.PPO_GROUP, [entry_id])
            return False
        except EpisodeUnavailable as exc:
            self.metrics.rollouts_dropped_total.labels(reason=f"episode_{exc.reason}").inc()
            if done is not None:
                self.ledger.record("dropped", ep=done.episode, why=exc.reason)
            ack(self.r, self.stream, keys.PPO_GROUP, [entry_id])
            return False
        rollout = Rollout(rollout_id=entry_id, episode=done.episode,
                          arrays={k: np.ascontiguousarray(v) for k, v in steps.items()},
                          policy_version=done.policy_version)
        if not self._send(peer, encode(rollout, self.limit, self.codec)):
            # That learner is gone: the rollout waits for the next one, credit and all.
            self.handouts.returned[entry_id] = fields
            self.handouts.credit.pop(peer, None)
            return False
        self.handouts.hand(entry_id, peer, fields)
        self.metrics.rollouts_served_total.inc()
        return True

    def _resend_overdue(self) -> None:
        """Sends again what was not acked for twice the learner's request timeout (a reply
        lost in the ZeroMQ hop; the learner drops what it already has and acks it again)."""
        before = time.monotonic() - 2 * self.config.learner.request_timeout_s
        for entry_id, peer, fields in self.handouts.overdue(before):
            del self.handouts.in_flight[entry_id]
            if self._send_rollout(peer, 0, 1 << 30, entry_id, fields):
                self.metrics.rollouts_redelivered_total.inc()
