"""Redis memory stays bounded: after ten replay windows of episodes the run holds one window.

Episodes are published by the actor's own publisher in batches and scored by a real
:class:`ScoringLoop` against the session's Redis; the replay window is 50 episodes and the
episodes stream is capped at 200 entries. After each batch (once the scorer caught up)
the run's keys are counted; Redis' own numbers (``MEMORY USAGE`` of the run's keys,
``used_memory``) are compared after 100 and after 550 episodes.
"""

from __future__ import annotations

import threading

import redis

from common import keys
from common.embedded_redis import EmbeddedRedis
from common.metrics import ScorerMetrics
from common.redis_io import connect
from scorer.score import ScoringLoop
from tests.integration.pipeline_helpers import (
    count_keys,
    group_pending,
    make_config,
    marked,
    play_episodes,
    publish,
    torch_threads,
    wait_for,
)

WINDOW, MAXLEN, BATCH, TOTAL = 50, 200, 50, 550


def _run_bytes(r: redis.Redis, run: str) -> int:
    """Bytes Redis attributes to the run's keys (MEMORY USAGE, every element sampled)."""
    return sum(r.memory_usage(key, samples=0) or 0
               for key in r.scan_iter(match=f"{keys.prefix(run)}*", count=1000))


def test_replay_window_bounds_redis_memory(redis_server: EmbeddedRedis,
                                           redis_client: redis.Redis) -> None:
    with torch_threads(1):
        _fill_ten_windows(redis_server, redis_client)


def _fill_ten_windows(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    r, run = redis_client, "bounded-memory"
    config = make_config(run, redis_server.url, "task.length=60",
                         f"scorer.replay_episodes={WINDOW}", f"redis.stream_maxlen={MAXLEN}")
    metrics = ScorerMetrics()
    loop = ScoringLoop(config, "scorer-0", connect(redis_server.url), metrics, threading.Event())
    scored = lambda: metrics.registry.get_sample_value("memup_scorer_episodes_scored_total")  # noqa: E731
    evicted = lambda: metrics.registry.get_sample_value("memup_scorer_replay_evicted_total")  # noqa: E731
    # Approximate trimming (MAXLEN ~) removes whole stream nodes only, so the stream may
    # exceed its cap by less than one node's worth of entries.
    node = int(r.config_get("stream-node-max-entries")["stream-node-max-entries"])
    frag_pattern = keys.fragments_key(run, "x")[:-1] + "*"
    mark_pattern = keys.mark_key(run, "x")[:-1] + "*"
    published = 0
    usage: dict[int, tuple[int, int]] = {}
    for start in range(0, TOTAL, BATCH):
        batch = play_episodes(config, BATCH, seed=start, prefix=f"b{start}")
        publish(r, config, batch)
        published += BATCH
        wait_for(lambda n=published: loop.tick() >= 0 and scored() == n, 60,
                 f"{published} episodes scored", interval=0)
        assert group_pending(r, run) == 0

        window = {m.decode() for m in r.zrange(keys.replay_key(run), 0, -1)}
        assert len(window) == min(published, WINDOW)
        # Caught up, nothing is in flight: exactly the window's episodes have keys.
        assert count_keys(r, frag_pattern) == len(window)
        assert marked(r, run) == window
        assert {done.episode for _, done in batch[-min(BATCH, WINDOW):]} == window  # the newest
        assert r.xlen(keys.episodes_stream(run)) <= MAXLEN + node
        if published in (100, TOTAL):
            usage[published] = (_run_bytes(r, run), int(r.info("memory")["used_memory"]))

    assert evicted() == TOTAL - WINDOW >= 10 * WINDOW - WINDOW
    assert r.zcard(keys.replay_key(run)) == WINDOW
    assert count_keys(r, frag_pattern) <= WINDOW and count_keys(r, mark_pattern) <= WINDOW
    assert r.xlen(keys.episodes_stream(run)) < TOTAL  # the stream was trimmed
    (run_100, used_100), (run_end, used_end) = usage[100], usage[TOTAL]
    # The run's keys: one window of fragments and marks, the capped stream and outcomes
    # (at most 1000 short strings). Measured: ~0.3 MB at 100 episodes; 550 episodes
    # without eviction would hold ~2 MB of fragments and marks alone.
    assert run_end < 1.5 * run_100, (run_100, run_end)
    # The whole server: the same bound, with room for allocator and client-buffer noise.
    assert used_end < 1.5 * used_100, (used_100, used_end)
