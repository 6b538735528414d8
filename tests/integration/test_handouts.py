"""PPO hand-outs are leased to one learner incarnation: nothing stays pending to a peer that
is gone, nothing is trained twice, and nothing is served before phase II.

A real :class:`SegmentServer` (in a thread) serves rollouts of episodes published through
the actor's own publisher into a real Redis; learners are real :class:`SegmentFeed` objects
talking to it over loopback TCP. A "killed" learner is a feed closed without acking.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
import zmq

from common import keys
from common.embedded_redis import EmbeddedRedis
from common.metrics import LearnerMetrics, ScorerMetrics
from common.redis_io import connect, ensure_group
from common.wire import RolloutRequest, encode
from learner.feed import SegmentFeed
from scorer.serve import SegmentServer
from tests.integration.pipeline_helpers import make_config, play_episodes, publish, wait_for

LEASE_S = 1.5


class Cluster:
    """A run in phase II with ``n`` published episodes and a serving segment server."""

    def __init__(self, url: str, r: redis.Redis, run: str, n: int, phase: int = 2,
                 serve: bool = True) -> None:
        self.url, self.r, self.run = url, r, run
        self.config = make_config(run, url, f"scorer.lease_s={LEASE_S}",
                                  "learner.request_timeout_s=0.5")
        stream = keys.episodes_stream(run)
        ensure_group(r, stream, keys.PPO_GROUP, "$")  # as the learner does before phase II
        r.hset(keys.control_key(run), "phase", phase)
        self.episodes = publish(r, self.config, play_episodes(self.config, n, seed=5))
        self.metrics = ScorerMetrics()
        self.stop = threading.Event()
        self.server = SegmentServer(self.config, "scorer-0", connect(url), self.metrics,
                                    self.stop)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        if serve:
            self.start()

    def start(self) -> None:
        self.thread.start()

    def feed(self) -> SegmentFeed:
        return SegmentFeed(self.config, connect(self.url), LearnerMetrics())

    def pending(self) -> int:
        return int(self.r.xpending(keys.episodes_stream(self.run), keys.PPO_GROUP)["pending"])

    def released(self, reason: str) -> float:
        return self.metrics.registry.get_sample_value(
            "memup_scorer_handouts_released_total", {"kind": "rollout", "reason": reason}) or 0

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)


@pytest.fixture
def cluster(redis_server: EmbeddedRedis, redis_client: redis.Redis,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(redis_server.url, redis_client, request.node.name[:40].replace("_", "-"), 8)
    yield c
    c.close()


def _take(feed: SegmentFeed, n: int) -> list[str]:
    got = feed.rollouts(n, policy_version=0, max_lag=2, timeout_s=15)
    assert len(got) == n, f"got {len(got)} of {n} rollouts"
    return [r.episode for r in got]


def _train(feed: SegmentFeed, n: int) -> list[str]:
    """Takes ``n`` rollouts and acks them as trained on, as the learner's PPO update does."""
    got = feed.rollouts(n, policy_version=0, max_lag=2, timeout_s=15)
    assert len(got) == n, f"got {len(got)} of {n} rollouts"
    feed.ack_rollouts([r.rollout_id for r in got])
    return [r.episode for r in got]


def test_a_killed_learners_rollouts_go_to_its_successor(cluster: Cluster) -> None:
    first = cluster.feed()
    held = _take(first, 4)
    first.close()  # killed: never trained, never acked
    assert cluster.pending() == 4
    second = cluster.feed()
    trained = _train(second, 8)
    assert sorted(trained) == sorted(cluster.episodes)  # every episode, each once
    assert set(held) <= set(trained)
    second.flush_acks()
    wait_for(lambda: cluster.pending() == 0, 10, "every rollout acked")
    assert cluster.released("new_incarnation") == 4
    second.close()


def test_a_silent_learner_loses_its_lease_and_trains_nothing_twice(cluster: Cluster) -> None:
    feed = cluster.feed()
    first = _train(feed, 4)
    wait_for(lambda: cluster.released("lease_expired") == 4, 3 * LEASE_S,
             "the frozen learner's lease ending")
    # Back from the freeze: the 4 come again (dropped and acked again), 4 new ones are trained.
    second = _train(feed, 4)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(cluster.episodes)
    feed.flush_acks()
    wait_for(lambda: cluster.pending() == 0, 10, "every rollout acked")
    feed.close()


def test_a_restarted_learner_acks_what_its_checkpoint_says_it_trained(cluster: Cluster) -> None:
    first = cluster.feed()
    trained = _train(first, 4)
    checkpoint = first.state_dict()  # trained on, acks not sent yet: then killed
    first.close()
    second = cluster.feed()
    second.load_state_dict(checkpoint)
    rest = _train(second, 4)
    assert sorted(trained + rest) == sorted(cluster.episodes)  # none of the 4 trained twice
    second.flush_acks()
    wait_for(lambda: cluster.pending() == 0, 10, "every rollout acked")
    second.close()


def test_no_rollout_is_served_before_phase_two(redis_server: EmbeddedRedis,
                                               redis_client: redis.Redis) -> None:
    c = Cluster(redis_server.url, redis_client, "forged-phase-one", 4, phase=1)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://127.0.0.1:{c.server.port}")
        sock.send(encode(RolloutRequest(credit=100, acks=[], policy_version=0, max_lag=9,
                                        incarnation="forged")))
        assert not sock.poll(1500)  # nothing comes back
        assert c.pending() == 0
        assert c.metrics.registry.get_sample_value(
            "memup_scorer_rejected_messages_total", {"reason": "ppo_not_started"}) >= 1
    finally:
        sock.close(0)
        c.close()


def test_rollouts_for_a_vanished_peer_wait_for_the_next_learner(
        redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    """A peer gone before its credit is spent (ROUTER_MANDATORY refuses the send): what it
    was to get waits, its credit is dropped, the server does not spin on it."""
    c = Cluster(redis_server.url, redis_client, "vanished-peer", 6, serve=False)
    server = c.server
    server.handouts.claim("gone")
    server.handouts.credit[b"\x00nobody"] = (6, 0, 9)
    server._pump_rollouts()  # the first pass takes back what a previous life held: none
    assert not server.handouts.returned
    server._pump_rollouts()  # returns: no endless retry of an unreachable peer
    assert not server.handouts.credit and not server.handouts.in_flight
    assert len(server.handouts.returned) == 6
    server.handouts.credit[b"\x00another"] = (6, 0, 9)  # the returned ones: no spinning either
    server._pump_rollouts()
    assert not server.handouts.credit and len(server.handouts.returned) == 6
    c.start()
    successor = c.feed()
    assert sorted(_train(successor, 6)) == sorted(c.episodes)
    successor.flush_acks()
    wait_for(lambda: c.pending() == 0, 10, "every rollout acked")
    successor.close()
    c.close()
