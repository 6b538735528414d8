"""``memup learner``: builds the learner, resumes its checkpoint, trains, writes the curves."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from common.config import ClusterConfig
from common.curves import plot_curves
from common.metrics import LearnerMetrics, serve_metrics
from common.redis_io import ServiceUnavailable, connect
from common.runlog import RunLog, read_records
from common.status import start_status
from learner.checkpoints import Checkpointer, adopt_memory
from learner.feed import SegmentFeed
from learner.train import Learner

log = logging.getLogger(__name__)


def run_dir(config: ClusterConfig) -> Path:
    """``<run.dir>/<run.name>``: config, metrics log, checkpoints and curves of the run."""
    return Path(config.run.dir) / config.run.name


def run_learner(config: ClusterConfig, stop: threading.Event, device: torch.device) -> int:
    """Trains until the run's goal or budget is reached, or ``stop``; returns the exit code.

    Exit codes: 0 the run finished (or was stopped cleanly).
    """
    torch.set_num_threads(max(1, config.run.threads))
    metrics = LearnerMetrics()
    port = serve_metrics(metrics.registry, config.learner.metrics_port, config.run.metrics_addr)
    r = connect(config.redis.url, client_name="learner")
    out = run_dir(config)
    run_log = RunLog(out, config.redacted())
    feed = SegmentFeed(config, r, metrics)
    learner = Learner(config, r, feed, metrics, run_log, stop, device)
    checkpointer = Checkpointer(learner, out, config.learner.checkpoint_every_s, metrics)
    resumed = checkpointer.resume()
    learner.ledger.record("resumed", inc=feed.incarnation, u=learner.progress.ppo_updates)
    learner.publisher.sync_versions()
    learner.publisher.keep_run_state(force=True)  # a fresh or emptied Redis gets it back
    if not resumed and config.learner.init_memory:
        adopt_memory(learner, Path(config.learner.init_memory))
    learner.on_update = checkpointer.maybe

    def status() -> dict[str, float]:
        return {**learner.status(), "metrics_port": port}

    beat = start_status(r, config.run.name, "learner-0", status)
    log.info("learner on %s, metrics on :%d, run dir %s", device, port, out)
    try:
        learner.train()
    finally:
        feed.flush_acks()
        try:  # the count at the stop, if Redis still answers: a checkpoint never waits for it
            learner.publisher.env_steps()
        except ServiceUnavailable:
            pass
        checkpointer.save()
        beat.stop()
        feed.close()
    if learner.progress.done:
        learner.publisher.set_control(done=1)
    write_curves(out)
    if learner.progress.done and config.learner.idle_when_done and not stop.is_set():
        log.info("run finished; results in %s. Waiting to be stopped "
                 "(learner.idle_when_done)", out)
        stop.wait()
    return 0


def write_curves(out: Path) -> list[Path]:
    """PNG learning curves of the run from its metrics log."""
    records = read_records(out)
    made = []
    one = [r for r in records if r.get("phase") == 1 and "memory_accuracy" in r]
    two = [r for r in records if r.get("phase") == 2 and "success" in r]
    if one:
        made.append(plot_curves({"detector": one}, "update", "memory_accuracy",
                                out / "phase1_memory_accuracy.png",
                                "Phase I: memory accuracy on fresh episodes", target=0.99))
    if two:
        made.append(plot_curves({"policy": two}, "env_steps", "success",
                                out / "phase2_success.png", "Phase II: success rate",
                                target=0.95))
        made.append(plot_curves({"policy": two}, "env_steps", "mean_return",
                                out / "phase2_return.png",
                                "Phase II: mean return of each update's episodes"))
    return made
