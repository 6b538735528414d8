"""The learner's side of the segment feed: one DEALER connected to every live scorer.

Segments: every lane has at most one request in flight. :meth:`SegmentFeed.request_next`
asks for every lane's next segment right after a batch was taken, so the scorers answer
while the learner trains on that batch (libzmq's I/O thread receives meanwhile): the next
:meth:`SegmentFeed.next_batch` mostly finds its replies waiting. A request unanswered for
``request_timeout_s`` is sent again (a reply lost in the ZeroMQ hop is served again); a
reply that answers no open request is a duplicate and is dropped, never trained on twice.

Rollouts (PPO): :meth:`SegmentFeed.rollouts` asks with a credit, dedupes by rollout id and
acknowledges, with the next request, the ids the learner trained on. A rollout it has already
trained on (sent again after a lost ack or a scorer restart) is dropped and acked again.

Every request carries this process's random incarnation id: a scorer that sees a new one
knows the learner restarted and serves what the old one held again. The ids trained on and
not yet acked are part of the checkpoint (:meth:`SegmentFeed.state_dict`), so a restarted
learner acks them instead of training on them twice.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

import numpy as np
import redis
import zmq

from common import keys
from common.config import ClusterConfig
from common.errors import WireError
from common.lifecycle import RateLimitedLog
from common.metrics import LearnerMetrics
from common.segments import steps as segment_steps
from common.segments import to_slice
from common.wire import Message, Rollout, RolloutRequest, Segment, SegmentRequest, decode, encode
from common.zmq_io import close, dealer
from memup.batch import Batch, collate

log = logging.getLogger(__name__)

DISCOVERY_PERIOD_S = 2.0
SEEN_KEPT = 20_000
"""Rollout ids remembered as trained (and kept in the checkpoint) to drop their repeats."""


@dataclass
class _Lane:
    episode: str | None = None  #: the episode of the next segment (None: a new one)
    offset: int = 0
    sent: float | None = None  #: when the open request was sent
    segment: Segment | None = None  #: the reply, waiting to be batched
    last_episode: str | None = None  #: episode of the segment trained last


class SegmentFeed:
    """Requests, receives and batches segments for ``lanes`` lanes; fetches rollouts."""

    def __init__(self, config: ClusterConfig, r: redis.Redis, metrics: LearnerMetrics) -> None:
        self.config, self.r, self.metrics = config, r, metrics
        self.limit = config.redis.max_frame_bytes
        self.sock = dealer(zmq.Context.instance(), self.limit, config.zmq.curve_keys)
        self.endpoints: set[str] = set()
        self.next_discovery = 0.0
        self.lanes = [_Lane() for _ in range(config.memup.lanes)]
        self.acks: list[str] = []
        self.rollout_acks: list[str] = []
        self.received: dict[str, Rollout] = {}
        self.seen_rollouts: dict[str, None] = {}  # trained on (or dropped) and acked
        self.taken: set[str] = set()  # handed to the trainer, not yet trained on
        self.batch_episodes: list[str] = []  #: the episode of each lane's segment, last batch
        self.incarnation = secrets.token_hex(8)
        self.said = RateLimitedLog(log)

    # -- discovery ----------------------------------------------------------------------

    def discover(self, force: bool = False) -> int:
        """Connects to new scorer endpoints and drops expired ones; returns how many are live."""
        now = time.monotonic()
        if not force and now < self.next_discovery:
            return len(self.endpoints)
        self.next_discovery = now + DISCOVERY_PERIOD_S
        run = self.config.run.name
        found = set()
        try:
            for key in self.r.scan_iter(match=keys.scorer_endpoints_pattern(run), count=100):
                value = self.r.get(key)
                if value:
                    found.add(value.decode())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Keep the scorers we know: ZeroMQ does not need Redis once connected.
            self.metrics.redis_errors_total.labels(kind="connection").inc()
            self.said.warning("discover", "scorer discovery failed (%s); keeping %d scorers",
                              exc, len(self.endpoints))
            return len(self.endpoints)
        for endpoint in found - self.endpoints:
            self.sock.connect(endpoint)
            log.info("connected to scorer %s", endpoint)
        for endpoint in self.endpoints - found:
            try:
                self.sock.disconnect(endpoint)
            except zmq.ZMQError:
                pass
            log.info("scorer %s left (its endpoint key expired)", endpoint)
        self.endpoints = found
        self.metrics.scorers_connected.set(len(found))
        return len(found)

    # -- sending and receiving ----------------------------------------------------------

    def _send(self, msg: Message) -> bool:
        try:
            self.sock.send(encode(msg, self.limit), flags=zmq.NOBLOCK)
            return True
        except zmq.Again:  # no scorer connected yet: the timeout sends it again
            return False

    def _receive(self, timeout_s: float) -> None:
        """Receives what arrives within ``timeout_s`` and files it under its lane or rollout."""
        if not self.sock.poll(int(timeout_s * 1000)):
            return
        while True:
            try:
                frame = self.sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frame, self.limit)
            except WireError as exc:
                self.metrics.rejected_messages_total.labels(reason=exc.reason).inc()
                self.said.warning(exc.reason, "refused a frame from a scorer: %s", exc)
                continue
            if isinstance(msg, Segment):
                if self._same_rollout(msg):
                    self._file_segment(msg)
            elif isinstance(msg, Rollout):
                if msg.rollout_id in self.seen_rollouts or msg.rollout_id in self.taken:
                    self.metrics.segments_duplicate_total.inc()
                    if msg.rollout_id in self.seen_rollouts:  # trained on: ack it once more
                        self.rollout_acks.append(msg.rollout_id)
                    continue
                self.received[msg.rollout_id] = msg
            else:
                self.metrics.rejected_messages_total.labels(reason="unexpected_kind").inc()

    def _same_rollout(self, seg: Segment) -> bool:
        """Whether ``seg`` was cut with this learner's r; refuses (counts, logs) it if not.

        A scorer run with another config would otherwise feed segments of another length
        that :func:`collate` pads or cuts without a word. The lane's request stays open, so
        it is asked again (maybe of another scorer) and nothing is acked or lost.
        """
        mine = self.config.memup.rollout
        if seg.rollout == mine:
            return True
        self.metrics.segments_rollout_mismatch_total.inc()
        self.said.warning("rollout_mismatch", "refused segment %s: the scorer cut it with "
                          "memup.rollout=%d, this learner trains on memup.rollout=%d; run "
                          "scorers and learner with the same config", seg.segment_id,
                          seg.rollout, mine)
        return False

    def _file_segment(self, seg: Segment) -> None:
        lane = self.lanes[seg.lane] if 0 <= seg.lane < len(self.lanes) else None
        answers = (lane is not None and lane.sent is not None and lane.segment is None
                   and (seg.offset == 0 if lane.episode is None
                        else (seg.episode, seg.offset) in {(lane.episode, lane.offset),
                                                           (seg.episode, 0)}))
        if not answers or lane is None or lane.sent is None:
            self.metrics.segments_duplicate_total.inc()
            return
        self.metrics.segment_rtt_seconds.observe(time.monotonic() - lane.sent)
        lane.segment = seg

    # -- segments -------------------------------------------------------------------------

    def request_next(self) -> None:
        """Sends a request for every lane that has neither a request in flight nor a reply."""
        now = time.monotonic()
        for b, lane in enumerate(self.lanes):
            if lane.segment is None and lane.sent is None:
                self._request(b, lane, now)

    def _request(self, b: int, lane: _Lane, now: float) -> None:
        acks, self.acks = self.acks, []
        req = SegmentRequest(lane=b, episode=lane.episode, offset=lane.offset, credit=1,
                             acks=acks, incarnation=self.incarnation)
        if not self._send(req):
            self.acks = acks + self.acks
        lane.sent = now

    def next_batch(self, timeout_s: float | None = None) -> Batch | None:
        """The next segment of every lane as one batch (None if ``timeout_s`` passed first).

        Also requests the following segments at once, so they arrive during training.
        """
        started = time.monotonic()
        retry = self.config.learner.request_timeout_s
        self.request_next()
        while any(lane.segment is None for lane in self.lanes):
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                return None
            self.discover()
            for b, lane in enumerate(self.lanes):
                if lane.segment is None and lane.sent is not None and now - lane.sent > retry:
                    self.metrics.requests_retried_total.inc()
                    self._request(b, lane, now)
            self._receive(0.05)
        self.metrics.segment_wait_seconds.observe(time.monotonic() - started)
        slices, fresh = [], np.zeros(len(self.lanes), dtype=bool)
        self.batch_episodes = []
        for b, lane in enumerate(self.lanes):
            seg = lane.segment
            assert seg is not None
            fresh[b] = seg.offset == 0 or seg.episode != lane.last_episode
            slices.append(to_slice(seg))
            self.batch_episodes.append(seg.episode)
            self.acks.append(seg.segment_id)
            end = seg.offset + segment_steps(seg)
            lane.last_episode = seg.episode
            # The lane's next position; the server answers an offset past the end with a new
            # episode, so the learner needs no episode lengths.
            lane.episode, lane.offset = seg.episode, end
            horizon = self.config.memup.lane_horizon
            if horizon and end >= horizon:  # over-sample early steps: a new episode next
                lane.episode, lane.offset = None, 0
            lane.segment, lane.sent = None, None
        self.request_next()
        return collate(slices, fresh, self.config.memup.rollout)

    # -- rollouts -------------------------------------------------------------------------

    def rollouts(self, n: int, policy_version: int, max_lag: int,
                 timeout_s: float | None = None) -> list[Rollout]:
        """``n`` on-policy rollouts (fewer if ``timeout_s`` passes first)."""
        started = time.monotonic()
        sent = None
        while len(self.received) < n:
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                break
            self.discover()
            # The server keeps our credit and sends as episodes arrive: ask once per call, and
            # again only when nothing came for a while (the request may have been lost).
            if sent is None or now - sent > self.config.learner.request_timeout_s:
                acks, self.rollout_acks = self.rollout_acks, []
                request = RolloutRequest(credit=n - len(self.received), acks=acks,
                                         policy_version=policy_version, max_lag=max_lag,
                                         incarnation=self.incarnation)
                if not self._send(request):
                    self.rollout_acks = acks + self.rollout_acks
                sent = now
            self._receive(0.05)
        picked = list(self.received.values())[:n]
        for rollout in picked:
            del self.received[rollout.rollout_id]
            self.taken.add(rollout.rollout_id)
        return picked

    def ack_rollouts(self, ids: list[str]) -> None:
        """Marks rollouts as trained on (or dropped): the ids ride on the next rollout
        request, and a repeat of one is dropped and acked again."""
        self.rollout_acks.extend(ids)
        for rollout_id in ids:
            self.taken.discard(rollout_id)
            self.seen_rollouts[rollout_id] = None
        while len(self.seen_rollouts) > SEEN_KEPT:
            self.seen_rollouts.pop(next(iter(self.seen_rollouts)))

    def state_dict(self) -> dict[str, list[str]]:
        """The rollouts trained on (newest ``SEEN_KEPT``) and the acks not yet sent."""
        return {"seen": list(self.seen_rollouts), "acks": list(self.rollout_acks)}

    def load_state_dict(self, state: dict[str, list[str]]) -> None:
        """Restores :meth:`state_dict`: the acks go out with the next request."""
        self.seen_rollouts = dict.fromkeys(state.get("seen", []))
        self.rollout_acks = list(state.get("acks", []))

    def flush_acks(self) -> None:
        """Sends pending rollout acks now (at shutdown)."""
        if self.rollout_acks:
            self._send(RolloutRequest(credit=0, acks=self.rollout_acks, policy_version=0,
                                      max_lag=0, incarnation=self.incarnation))
            self.rollout_acks = []

    def close(self) -> None:
        close(self.sock)

