"""``memup up``: a whole cluster on this machine — embedded Redis, every role, a live view."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from cli.options import HelpFormatter
from cli.roles import add_cluster_flags, load_cluster_config, setup_logging

log = logging.getLogger("memup.up")

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "up_tmaze_lnr_1000.toml"
"""What `memup up` runs without --config (the checkout's file; defaults match it)."""

EXAMPLES = """examples:
  memup up                                             # T-Maze-LNR-1000, phase I then PPO
  memup up --config configs/up_tmaze_lnr_20.toml       # a short maze (about a minute)
  memup up --set actor.replicas=4 --set run.name=wide  # more actors, another run
  memup up --config configs/up_tmaze_lnr_1000_lstm10.toml   # the PPO-LSTM baseline
  REDIS_URL=redis://:pw@10.0.0.5:6379/0 memup up       # use an existing Redis

Ctrl-C stops every role cleanly (the learner checkpoints); run the same command again to
resume. Results: runs/<run.name>/ (config.json, metrics.jsonl, checkpoints/, logs/, *.png).
"""


def add_up_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run a local cluster: Redis + actors + scorers + learner",
                       description="Start an embedded Redis (unless REDIS_URL is set) and "
                       "every role as a supervised subprocess; show live progress.",
                       formatter_class=HelpFormatter, epilog=EXAMPLES)
    add_cluster_flags(p)
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop the run after this much wall time (0 = until the learner ends)")
    p.set_defaults(run=run_up)


def run_up(args: argparse.Namespace) -> int:
    """Runs the cluster until the learner finishes, the time limit, or Ctrl-C."""
    if args.cluster_config is None and DEFAULT_CONFIG.is_file():
        args.cluster_config = DEFAULT_CONFIG
    config = load_cluster_config(args)
    setup_logging(args.log_level, "up")
    from cli.status_view import StatusView
    from cli.supervisor import Child, Supervisor, role_argv
    from common import keys
    from common.embedded_redis import EmbeddedRedis
    from common.lifecycle import StopSignal
    from common.metrics import SupervisorMetrics, serve_metrics
    from common.redis_io import connect

    run_dir = Path(config.run.dir) / config.run.name
    log.info("run %s: resolved config %s", config.run.name, json.dumps(config.redacted()))
    embedded = None
    url = config.redis.url
    if not url:
        embedded = EmbeddedRedis().start()
        url = embedded.url
        log.info("started an embedded Redis on 127.0.0.1:%d (password-protected, data in %s)",
                 embedded.port, embedded.data_dir)
    env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    overrides = list(args.overrides)
    children = [Child("learner-0", "learner", role_argv("learner", None, args.cluster_config,
                                                        overrides), run_dir / "logs/learner.log")]
    for role, count in (("scorer", config.scorer.replicas), ("actor", config.actor.replicas)):
        for i in range(count):
            children.append(Child(f"{role}-{i}", role,
                                  role_argv(role, i, args.cluster_config, overrides),
                                  run_dir / f"logs/{role}-{i}.log"))
    r = connect(url)
    r.hdel(keys.control_key(config.run.name), "done")
    metrics = SupervisorMetrics()
    port = serve_metrics(metrics.registry, 0)
    log.info("supervisor metrics (restarts, running roles) on http://127.0.0.1:%d/metrics", port)
    supervisor = Supervisor(children, env, metrics)
    view = StatusView(r, config.run.name)
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    with StopSignal() as stop:
        supervisor.start()
        try:
            while not stop.is_set() and supervisor.finished is None:
                supervisor.poll()
                view.draw()
                if deadline is not None and time.monotonic() > deadline:
                    log.info("the %.0f-minute limit is reached; stopping", args.max_minutes)
                    break
                stop.wait(0.5)
            summary = view.draw(force=True) or {}
        finally:
            log.info("stopping the roles (the learner saves a checkpoint)...")
            supervisor.stop()
            if embedded is not None:
                embedded.stop()
    done = supervisor.finished is not None
    print_summary(run_dir, config.run.name, done, summary.get("elapsed_s", 0.0))
    return 0


def print_summary(run_dir: Path, run: str, done: bool, elapsed_s: float) -> None:
    """The run's outcome, from the learner's metrics log (the source of truth)."""
    from common.runlog import read_records

    records = read_records(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    one = [r for r in records if r.get("phase") == 1]
    two = [r for r in records if r.get("phase") == 2]
    parts = [f"run {run}: {'finished' if done else 'stopped'} after {elapsed_s / 60:.1f} min"]
    if one:
        parts.append(f"phase I: memory accuracy {one[-1]['memory_accuracy']:.3f} after "
                     f"{one[-1]['update']} updates")
    if two:
        parts.append(f"phase II: success {two[-1]['success']:.3f} after "
                     f"{two[-1]['ppo_update']} PPO updates, {two[-1]['env_steps']:,} env steps")
    print("\n" + "; ".join(parts), file=sys.stderr)
    hint = "" if done else "; run the same command again to resume"
    print(f"results in {run_dir}/ (metrics.jsonl, *.png, checkpoints/, logs/){hint}",
          file=sys.stderr)
