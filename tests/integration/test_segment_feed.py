"""A segment reply lost between the segment server and the learner is asked for again,
served again, and trained on exactly once.

A real :class:`SegmentServer` (in a thread) serves segments of episodes a real
:class:`ScoringLoop` scored into the replay window; a real :class:`SegmentFeed` asks for
them over TCP. Between the two sits a ZeroMQ proxy the learner finds through Redis: the
server binds 127.0.0.1 but advertises 127.0.0.2 (same port), where the proxy listens, as a
NAT or a load balancer would. The proxy holds back chosen replies (the learner sees them
as lost), then lets them through late, after the retried requests were answered.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import redis
import zmq

from common import keys
from common.embedded_redis import EmbeddedRedis
from common.metrics import LearnerMetrics, ScorerMetrics
from common.redis_io import connect
from common.wire import Segment, decode
from learner.feed import SegmentFeed
from memup.encoding import encode_steps
from scorer.score import ScoringLoop
from scorer.serve import SegmentServer
from tests.integration.pipeline_helpers import (
    Stoppable,
    make_config,
    marked,
    play_episodes,
    publish,
    torch_threads,
    wait_for,
)

LANES, ROLLOUT, HELD = 4, 5, 2


class HoldingProxy(Stoppable):
    """ROUTER (learners connect) <-> DEALER (connected to the server) forwarding frames both
    ways, except that it holds back the first ``hold`` replies at episode offset ``offset``:
    the learner sees them as lost. They are let through late, just before the first reply
    at a later offset, i.e. when the learner already waits for the segments after them."""

    def __init__(self, front: str, back: str, hold: int, offset: int) -> None:
        super().__init__(self._serve, "holding-proxy")
        self.front, self.back = front, back
        self.to_hold, self.offset = hold, offset
        self.held: list[tuple[bytes, bytes, Segment]] = []
        self.released = 0
        self.bound = threading.Event()

    def _serve(self, stop: threading.Event) -> None:
        ctx = zmq.Context.instance()
        front, back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
        for sock in (front, back):
            sock.setsockopt(zmq.LINGER, 0)
        front.bind(self.front)
        back.connect(self.back)
        self.bound.set()
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(back, zmq.POLLIN)
        learner = b""
        try:
            while not stop.is_set():
                events = dict(poller.poll(20))
                if front in events:
                    learner, frame = front.recv_multipart()
                    back.send(frame)
                if back in events:
                    frame = back.recv()
                    msg = decode(frame)
                    assert isinstance(msg, Segment)
                    if self.to_hold > 0 and msg.offset == self.offset:
                        self.to_hold -= 1
                        self.held.append((learner, frame, msg))
                        continue
                    if msg.offset > self.offset and self.released < len(self.held):
                        for peer, late, _ in self.held:  # same pipe: they arrive first
                            front.send_multipart([peer, late])
                        self.released = len(self.held)
                    front.send_multipart([learner, frame])
        finally:
            front.close(0)
            back.close(0)


def _inputs(episodes: dict[str, dict[str, np.ndarray]], episode: str, offset: int) -> np.ndarray:
    """The memory inputs of steps ``offset .. offset + ROLLOUT`` of a published episode."""
    steps = episodes[episode]
    inputs, _, _ = encode_steps(steps["obs"], steps["action"], steps["reward"], 2)
    return inputs[offset:offset + ROLLOUT]


def _score_all(config, r: redis.Redis, url: str, played: list, metrics: ScorerMetrics) -> None:
    """Scores every published episode into the replay window with a real ScoringLoop."""
    scoring = ScoringLoop(config, "scorer-0", connect(url), metrics, threading.Event())
    with torch_threads(1):
        wait_for(lambda: scoring.tick() >= 0 and len(marked(r, config.run.name)) == len(played),
                 30, "every episode scored into the replay window", interval=0)


def test_lost_segment_is_served_again_and_trained_once(
        redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    r, run, url = redis_client, "feed-lost-reply", redis_server.url
    config = make_config(run, url, f"memup.lanes={LANES}", f"memup.rollout={ROLLOUT}",
                         "learner.request_timeout_s=0.5", "scorer.bind_host=127.0.0.1",
                         "scorer.advertise_host=127.0.0.2")
    played = play_episodes(config, 60, seed=21)
    publish(r, config, played)
    episodes = {done.episode: {k: np.concatenate([f.arrays[k] for f in frags])
                               for k in ("obs", "action", "reward")}
                for frags, done in played}
    assert min(len(e["action"]) for e in episodes.values()) > 2 * ROLLOUT

    scorer_metrics, learner_metrics = ScorerMetrics(), LearnerMetrics()
    _score_all(config, r, url, played, scorer_metrics)

    server_stop = threading.Event()
    server = SegmentServer(config, "scorer-0", connect(url), scorer_metrics, server_stop)
    proxy = HoldingProxy(f"tcp://127.0.0.2:{server.port}", f"tcp://127.0.0.1:{server.port}",
                         hold=HELD, offset=ROLLOUT)
    proxy.start()
    assert proxy.bound.wait(5)
    server_thread = threading.Thread(target=server.run, name="segment-server", daemon=True)
    server_thread.start()
    feed = SegmentFeed(config, connect(url), learner_metrics)

    def learner(name: str) -> float:
        return learner_metrics.registry.get_sample_value(f"memup_learner_{name}") or 0.0

    def scorer(name: str) -> float:
        return scorer_metrics.registry.get_sample_value(f"memup_scorer_{name}") or 0.0

    try:
        wait_for(lambda: feed.discover(force=True) == 1, 10, "the advertised endpoint")
        assert feed.endpoints == {f"tcp://127.0.0.2:{server.port}"}  # the learner uses the proxy
        assert r.get(keys.scorer_endpoint_key(run, 0)) == f"tcp://127.0.0.2:{server.port}".encode()

        trained: list[list[tuple[str, int]]] = []  # per batch: each lane's (episode, offset)

        def take() -> None:
            expected = [(lane.episode, lane.offset) for lane in feed.lanes]
            batch = feed.next_batch(timeout_s=10)
            assert batch is not None, "no full batch within 10 s"
            assert tuple(batch.inputs.shape[:2]) == (LANES, ROLLOUT)
            row = []
            for b, lane in enumerate(feed.lanes):
                episode, offset = expected[b]
                if episode is None or offset >= len(episodes[episode]["action"]):
                    episode, offset = lane.last_episode, 0  # the server picks a new episode
                n = min(ROLLOUT, len(episodes[episode]["action"]) - offset)
                assert lane.last_episode == episode and lane.offset == offset + n
                assert bool(batch.fresh[b]) == (offset == 0)
                np.testing.assert_array_equal(batch.inputs[b, :n].numpy(),
                                              _inputs(episodes, episode, offset)[:n])
                row.append((episode, offset))
            trained.append(row)

        take()  # new episodes, offset 0; the next requests (offset 5) leave at once
        retried_before = learner("requests_retried_total")
        take()  # HELD of those replies never arrive: their lanes are asked again
        assert len(proxy.held) == HELD
        assert learner("requests_retried_total") - retried_before >= HELD
        assert scorer("segments_redelivered_total") >= HELD

        # The lost replies turn up late, while their lanes wait for the segments after
        # them: counted as duplicates, never trained.
        take()
        assert proxy.released == HELD
        assert learner("segments_duplicate_total") >= HELD

        for _, _, seg in proxy.held:  # each late reply's segment was trained exactly once
            assert sum(row[seg.lane] == (seg.episode, seg.offset) for row in trained) == 1
        assert learner("segments_duplicate_total") >= HELD
        # Acks travel back over ZeroMQ and are counted by the server thread: wait for them.
        wait_for(lambda: scorer("segments_acked_total") >= LANES * (len(trained) - 1), 10,
                 "the scorer counting the acks of every trained batch but the last")
    finally:
        server_stop.set()
        server_thread.join(5)
        proxy.finish()
        feed.close()


def test_lanes_leave_episodes_at_the_horizon(
        redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    """With ``memup.lane_horizon`` two rollouts, lanes walk offsets 0 and 5 of episodes
    longer than that, then start new ones: the early steps are all of every batch."""
    r, run, url = redis_client, "feed-horizon", redis_server.url
    config = make_config(run, url, f"memup.lanes={LANES}", f"memup.rollout={ROLLOUT}",
                         f"memup.lane_horizon={2 * ROLLOUT}", "scorer.bind_host=127.0.0.1",
                         "scorer.advertise_host=127.0.0.1")
    played = play_episodes(config, 40, seed=22)
    publish(r, config, played)
    lengths = {done.episode: done.length for _, done in played}
    assert min(lengths.values()) > 2 * ROLLOUT  # a walk to the end would reach offset 10
    scorer_metrics = ScorerMetrics()
    _score_all(config, r, url, played, scorer_metrics)
    server_stop = threading.Event()
    server = SegmentServer(config, "scorer-0", connect(url), scorer_metrics, server_stop)
    server_thread = threading.Thread(target=server.run, name="segment-server", daemon=True)
    server_thread.start()
    feed = SegmentFeed(config, connect(url), LearnerMetrics())
    try:
        wait_for(lambda: feed.discover(force=True) == 1, 10, "the advertised endpoint")
        walked: list[list[tuple[str | None, int]]] = []
        for _ in range(6):
            batch = feed.next_batch(timeout_s=10)
            assert batch is not None, "no full batch within 10 s"
            walked.append([(lane.last_episode, int(batch.fresh[b]))
                           for b, lane in enumerate(feed.lanes)])
            # After the second rollout of an episode the lane asks for a new one.
            for lane in feed.lanes:
                assert (lane.episode, lane.offset) in {(lane.last_episode, ROLLOUT), (None, 0)}
        for b in range(LANES):
            fresh = [row[b][1] for row in walked]
            assert fresh == [1, 0, 1, 0, 1, 0], (b, fresh)  # new episode every two batches
            episodes = [row[b][0] for row in walked]
            assert all(episodes[i] == episodes[i + 1] for i in (0, 2, 4)), episodes
    finally:
        server_stop.set()
        server_thread.join(5)
        feed.close()


def test_segments_cut_with_another_rollout_are_refused(
        redis_server: EmbeddedRedis, redis_client: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    """A scorer run with ``memup.rollout`` 5 and a learner run with 6: the learner refuses
    every segment (counted, one log line for all of them) and trains on none; a learner
    with the scorer's r then gets full batches from the same server."""
    r, run, url = redis_client, "feed-rollout-mismatch", redis_server.url
    common = (f"memup.lanes={LANES}", "learner.request_timeout_s=0.3",
              "scorer.bind_host=127.0.0.1", "scorer.advertise_host=127.0.0.1")
    config = make_config(run, url, f"memup.rollout={ROLLOUT}", *common)
    other = make_config(run, url, f"memup.rollout={ROLLOUT + 1}", *common)
    played = play_episodes(config, 20, seed=23)
    publish(r, config, played)
    scorer_metrics, learner_metrics = ScorerMetrics(), LearnerMetrics()
    _score_all(config, r, url, played, scorer_metrics)
    server_stop = threading.Event()
    server = SegmentServer(config, "scorer-0", connect(url), scorer_metrics, server_stop)
    server_thread = threading.Thread(target=server.run, name="segment-server", daemon=True)
    server_thread.start()
    feed = SegmentFeed(other, connect(url), learner_metrics)
    matching = SegmentFeed(config, connect(url), LearnerMetrics())

    def refused() -> float:
        name = "memup_learner_segments_rollout_mismatch_total"
        return learner_metrics.registry.get_sample_value(name) or 0.0

    def served() -> float:
        return scorer_metrics.registry.get_sample_value("memup_scorer_segments_served_total")

    try:
        assert refused() == 0.0  # exported at 0 from the start
        wait_for(lambda: feed.discover(force=True) == 1, 10, "the scorer's endpoint")
        with caplog.at_level(logging.WARNING, logger="learner.feed"):
            # Requests are retried every 0.3 s: each lane is served and refused repeatedly.
            assert feed.next_batch(timeout_s=2.0) is None
        assert refused() >= 2 * LANES and served() >= refused()
        assert all(lane.segment is None and lane.last_episode is None for lane in feed.lanes)
        assert feed.acks == []  # nothing trained on, nothing acked
        said = [rec.getMessage() for rec in caplog.records if rec.name == "learner.feed"]
        assert len(said) == 1, said
        assert (f"memup.rollout={ROLLOUT}, this learner trains on memup.rollout={ROLLOUT + 1}"
                in said[0])

        count = refused()
        wait_for(lambda: matching.discover(force=True) == 1, 10, "the scorer's endpoint")
        batch = matching.next_batch(timeout_s=10)
        assert batch is not None and tuple(batch.inputs.shape[:2]) == (LANES, ROLLOUT)
        assert refused() == count
    finally:
        server_stop.set()
        server_thread.join(5)
        feed.close()
        matching.close()
