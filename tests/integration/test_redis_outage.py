"""A Redis restart mid-run: the scoring loop and the actor's publisher ride it out.

Redis runs without persistence here, so the restart also loses the data (reliability.md
F3b): the scorer must recreate its group (NOGROUP), the publisher must retry what it could
not write, and episodes published after the restart must be scored.
"""

from __future__ import annotations

import threading

from common.embedded_redis import EmbeddedRedis
from common.metrics import ScorerMetrics
from common.redis_io import RetryPolicy, connect
from scorer.score import ScoringLoop
from tests.integration.pipeline_helpers import (
    make_config,
    marked,
    play_episodes,
    publish,
    torch_threads,
    wait_for,
)


def test_scoring_survives_a_redis_restart() -> None:
    with EmbeddedRedis() as server, torch_threads(1):
        config = make_config("outage", server.url)
        r = connect(server.url, retry=RetryPolicy(attempts=30, cap=0.5))
        metrics = ScorerMetrics()
        stop = threading.Event()
        loop = ScoringLoop(config, "scorer-0", connect(server.url), metrics, stop)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        try:
            before = publish(r, config, play_episodes(config, 8, seed=1, prefix="before"))
            wait_for(lambda: set(before) <= marked(r, "outage"), 30, "first episodes scored")
            server.restart(down_for=1.5)
            wait_for(lambda: (metrics.registry.get_sample_value(
                "memup_scorer_redis_errors_total", {"kind": "connection"}) or 0) > 0, 20,
                "the outage noticed")
            after = publish(r, config, play_episodes(config, 8, seed=2, prefix="after"))
            wait_for(lambda: set(after) <= marked(r, "outage"), 60,
                     "episodes published after the restart scored")
            assert thread.is_alive()  # the loop never died
        finally:
            stop.set()
            thread.join(10)
