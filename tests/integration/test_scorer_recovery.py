"""A scorer killed with SIGKILL while it holds episodes loses none and scores none twice.

Real ``memup scorer`` processes against the session's Redis. The kill is made to land while
the scorer holds delivered, unacknowledged entries: the test stops the process (SIGSTOP)
when its consumer has pending entries in the ``scorers`` group, checks that they are still
pending with the process frozen, and only then sends SIGKILL. Recovery is either the same
replica restarted (it drains its own pending entries first) or another replica's janitor
(XAUTOCLAIM of entries idle too long).
"""

from __future__ import annotations

import signal
import threading
import time

import redis

from common import keys
from common.embedded_redis import EmbeddedRedis
from common.metrics import ScorerMetrics
from common.redis_io import connect
from common.wire import EpisodeDone, decode, encode
from scorer.score import ScoringLoop
from tests.integration.pipeline_helpers import (
    ScorerProcess,
    consumer_pending,
    group_pending,
    make_config,
    marked,
    play_episodes,
    publish,
    sample,
    start_scorers,
    torch_threads,
    wait_for,
)

SCORED = "memup_scorer_episodes_scored_total"
DUPLICATE = "memup_scorer_episodes_duplicate_total"
RECLAIMED = "memup_scorer_entries_reclaimed_total"


def _pending_episodes(r: redis.Redis, run: str, consumer: str) -> list[str]:
    """Episode ids of the entries pending for ``consumer``."""
    stream = keys.episodes_stream(run)
    rows = r.xpending_range(stream, keys.SCORERS_GROUP, min="-", max="+", count=10_000,
                            consumername=consumer)
    out = []
    for row in rows:
        entry = r.xrange(stream, row["message_id"], row["message_id"])
        done = decode(entry[0][1][keys.STREAM_FIELD])
        assert isinstance(done, EpisodeDone)
        out.append(done.episode)
    return out


def _kill_while_holding(r: redis.Redis, scorer: ScorerProcess, total: int,
                        timeout: float = 30.0) -> int:
    """SIGKILLs ``scorer`` at a moment it holds pending entries and has already marked some
    episodes; returns how many entries it left pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scorer.dead():
            raise AssertionError(scorer.dead())
        if consumer_pending(r, scorer.run_id, scorer.consumer) and marked(r, scorer.run_id):
            scorer.signal(signal.SIGSTOP)
            # A transaction the scorer wrote just before it froze may still be executing.
            time.sleep(0.05)
            if consumer_pending(r, scorer.run_id, scorer.consumer):
                scorer.kill()
                held = consumer_pending(r, scorer.run_id, scorer.consumer)
                assert held > 0
                return held
            scorer.signal(signal.SIGCONT)
        if len(marked(r, scorer.run_id)) >= total:
            break
        time.sleep(0.002)
    raise AssertionError("the scorer was never caught holding entries: it scored everything "
                         "first (make scoring slower or publish more episodes)")


def test_scorer_restarted_after_sigkill_scores_every_episode_exactly_once(
        redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    r, run, n = redis_client, "recovery-restart", 200
    config = make_config(run, redis_server.url)
    episodes = play_episodes(config, n, seed=11)
    # No janitor within the test: only draining its own pending entries can recover them.
    no_janitor = ["scorer.janitor_idle_s=600"]
    first = ScorerProcess(redis_server.url, run, 0, no_janitor)
    second: ScorerProcess | None = None
    try:
        first.wait_ready(r)
        published = publish(r, config, episodes)
        assert len(set(published)) == n

        held = _kill_while_holding(r, first, n)
        scored_at_kill = marked(r, run)
        held_episodes = _pending_episodes(r, run, first.consumer)
        assert len(held_episodes) == held
        # Mark, replay entry, outcome and XACK are one transaction: what the dead scorer
        # still holds is unmarked, and every mark has its outcome.
        assert not scored_at_kill & set(held_episodes)
        assert r.llen(keys.outcomes_key(run)) == len(scored_at_kill)
        assert 0 < len(scored_at_kill) < n

        # An actor whose publish was retried after a lost reply adds "done" entries again:
        # the restarted scorer must skip these already marked episodes.
        again = sorted(scored_at_kill)[:5]
        by_id = {done.episode: done for _, done in episodes}
        for episode in again:
            r.xadd(keys.episodes_stream(run), {keys.STREAM_FIELD: encode(by_id[episode])})

        # The dead process's endpoint key would expire within scorer.endpoint_ttl_s; gone
        # now, it tells when the new process is up.
        r.delete(keys.scorer_endpoint_key(run, 0))
        second = ScorerProcess(redis_server.url, run, 0, no_janitor)  # the same replica id
        second.wait_ready(r)
        wait_for(lambda: len(marked(r, run)) == n, 30, f"all {n} episodes marked",
                 alive=second.dead)
        wait_for(lambda: group_pending(r, run) == 0, 10, "no entry pending", alive=second.dead)
        metrics = wait_for(
            lambda: (m := second.scrape())[(SCORED, ())] + m[(DUPLICATE, ())]
            >= n - len(scored_at_kill) + len(again) and m,
            10, "the restarted scorer's counters")

        assert marked(r, run) == set(published)
        replay = {m.decode() for m in r.zrange(keys.replay_key(run), 0, -1)}
        assert r.zcard(keys.replay_key(run)) == n and replay == set(published)
        assert group_pending(r, run) == 0
        group = r.xinfo_groups(keys.episodes_stream(run))[0]
        assert group["pending"] == 0 and group["last-delivered-id"] == r.xinfo_stream(
            keys.episodes_stream(run))["last-generated-id"]
        # Exactly once downstream: one outcome per scoring, and every episode scored by
        # exactly one of the two runs.
        outcomes = r.llen(keys.outcomes_key(run))
        assert outcomes <= n + held
        assert outcomes == n
        assert sample(metrics, SCORED) == n - len(scored_at_kill)
        assert sample(metrics, DUPLICATE) == len(again)
        assert second.stop() == 0
    finally:
        first.cleanup()
        if second is not None:
            second.cleanup()


def test_janitor_of_another_replica_reclaims_what_a_dead_scorer_held(
        redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    r, run, n = redis_client, "recovery-janitor", 120
    config = make_config(run, redis_server.url)
    episodes = play_episodes(config, n, seed=12)
    # Both start together (their start-ups overlap); replica 0 is killed and never restarted.
    scorers = start_scorers(redis_server.url, run, {
        0: [],
        1: ["scorer.janitor_idle_s=1", "scorer.janitor_period_s=0.5"],
    })
    dead, survivor = scorers[0], scorers[1]
    try:
        dead.wait_ready(r)
        survivor.wait_ready(r)
        # The survivor is frozen until the kill, so the doomed replica reads every batch: on
        # a fast machine two replicas sharing 120 episodes can finish before one is caught
        # holding entries. A first batch, marked, makes the kill land mid-run.
        survivor.signal(signal.SIGSTOP)
        time.sleep(0.5)  # a read it blocked in just before (200 ms) expires empty, server side
        first = 8
        published = publish(r, config, episodes[:first])
        wait_for(lambda: len(marked(r, run)) == first, 30, f"the first {first} marked",
                 alive=dead.dead)
        published += publish(r, config, episodes[first:])
        try:
            held = _kill_while_holding(r, dead, n)
        finally:
            survivor.signal(signal.SIGCONT)
        held_episodes = _pending_episodes(r, run, dead.consumer)
        assert len(held_episodes) == held and not set(held_episodes) & marked(r, run)

        wait_for(lambda: len(marked(r, run)) == n, 30, f"all {n} episodes marked",
                 alive=survivor.dead)
        wait_for(lambda: group_pending(r, run) == 0, 10, "no entry pending",
                 alive=survivor.dead)
        metrics = wait_for(lambda: (m := survivor.scrape())[(RECLAIMED, ())] >= held and m,
                           10, "the survivor's reclaim counter")

        assert marked(r, run) == set(published)
        assert consumer_pending(r, run, dead.consumer) == 0
        assert r.zcard(keys.replay_key(run)) == n
        assert r.llen(keys.outcomes_key(run)) == n  # each episode scored once
        assert sample(metrics, RECLAIMED) >= held
        assert survivor.stop() == 0
    finally:
        for scorer in scorers.values():
            scorer.cleanup()


def test_done_entry_published_twice_is_scored_once(redis_server: EmbeddedRedis,
                                                   redis_client: redis.Redis) -> None:
    """The actor's publisher re-runs its whole MULTI when a reply is lost, so an episode's
    "done" entry can be in the stream twice, one right after the other, and both copies
    then arrive in one read of the scorer. Scoring must still happen once per episode."""
    r, run = redis_client, "recovery-twice"
    config = make_config(run, redis_server.url)
    episodes = play_episodes(config, 4, seed=13)
    publish(r, config, episodes)
    publish(r, config, episodes[:2])  # the retried transaction of the first two
    assert r.xlen(keys.episodes_stream(run)) == 6
    metrics = ScorerMetrics()
    loop = ScoringLoop(config, "scorer-0", connect(redis_server.url), metrics,
                       threading.Event())
    with torch_threads(1):
        wait_for(lambda: loop.tick() >= 0 and group_pending(r, run) == 0
                 and len(marked(r, run)) == 4, 20, "every entry handled", interval=0)
        wait_for(lambda: loop.tick() == 0, 5, "nothing left to read", interval=0)

    assert r.zcard(keys.replay_key(run)) == 4
    scored = metrics.registry.get_sample_value(SCORED)
    duplicates = metrics.registry.get_sample_value(DUPLICATE)
    outcomes = r.llen(keys.outcomes_key(run))
    assert (scored, duplicates, outcomes) == (4, 2, 4), (
        f"scored {scored}, skipped as duplicates {duplicates}, {outcomes} outcomes for 4 "
        "episodes: a copy read in the same batch as its original is scored again")
