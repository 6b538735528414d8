"""``memup scorer``: the scoring loop and the segment server of one scorer replica."""

from __future__ import annotations

import logging
import threading
import time

import torch

from common.config import ClusterConfig
from common.keys import consumer_name
from common.metrics import ScorerMetrics, serve_metrics
from common.redis_io import connect
from common.status import start_status
from scorer.score import ScoringLoop
from scorer.serve import SegmentServer

log = logging.getLogger(__name__)


def run_scorer(config: ClusterConfig, replica: int | str, stop: threading.Event,
               device: torch.device | str = "cpu") -> int:
    """Runs both loops (each in its own thread, with its own Redis client) until ``stop``.

    Returns the exit code: 0 stopped on request, 1 a loop died (the other is stopped too).
    """
    torch.set_num_threads(max(1, config.run.threads))
    name = consumer_name("scorer", replica)
    metrics = ScorerMetrics()
    port = serve_metrics(metrics.registry, config.scorer.metrics_port, config.run.metrics_addr)
    scoring = ScoringLoop(config, name, connect(config.redis.url, client_name=name), metrics,
                          stop, device)
    server = SegmentServer(config, name, connect(config.redis.url, client_name=f"{name}-serve"),
                           metrics, stop)
    failed = threading.Event()

    def guarded(target, what: str):  # type: ignore[no-untyped-def]
        def body() -> None:
            try:
                target()
            except Exception:
                log.exception("%s: the %s died; stopping the scorer so it is restarted", name,
                              what)
                failed.set()
                stop.set()
        return threading.Thread(target=body, name=what, daemon=True)

    threads = [guarded(scoring.run, "scoring loop"), guarded(server.run, "segment server")]
    for t in threads:
        t.start()
    started = time.monotonic()
    r = connect(config.redis.url)

    def status() -> dict[str, float]:
        value = metrics.registry.get_sample_value
        return {"scored": value("memup_scorer_episodes_scored_total") or 0.0,
                "served": value("memup_scorer_segments_served_total") or 0.0,
                "rollouts": value("memup_scorer_rollouts_served_total") or 0.0,
                "detector_version": scoring.version, "scored_steps": scoring.scored_steps,
                "uptime_s": time.monotonic() - started, "metrics_port": port}

    beat = start_status(r, config.run.name, name, status)
    log.info("%s: scoring and serving on %s, metrics on :%d", name, server.endpoint, port)
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    beat.stop()
    return 1 if failed.is_set() else 0
