"""``memup actor|scorer|learner``: one role against an existing Redis, for any machine."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from cli.options import HelpFormatter

ROLE_EXAMPLES = {
    "actor": """examples:
  REDIS_URL=redis://:pw@10.0.0.5:6379/0 \
    memup actor --config configs/up_tmaze_lnr_1000.toml --replica 3
  memup actor --redis-url redis://:secret@127.0.0.1:6379/0 --set actor.envs=32
""",
    "scorer": """examples:
  REDIS_URL=redis://:pw@10.0.0.5:6379/0 \
    memup scorer --config configs/up_tmaze_lnr_1000.toml \\
      --set scorer.bind_host=0.0.0.0 --set scorer.advertise_host=10.0.0.7 --set scorer.port=5555
""",
    "learner": """examples:
  REDIS_URL=redis://:pw@10.0.0.5:6379/0 \
    memup learner --config configs/up_tmaze_lnr_1000.toml
  memup learner --redis-url redis://:secret@127.0.0.1:6379/0 --set run.device=cuda
""",
}


def add_cluster_flags(p: argparse.ArgumentParser) -> None:
    """Flags every cluster command shares: the config file and its overrides."""
    p.add_argument("--config", dest="cluster_config", type=Path, default=None, metavar="TOML",
                   help="experiment config ([section] key = value); MEMUP_<SECTION>_<KEY> "
                        "environment variables and --set override it")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set learner.checkpoint_every_s=60")
    p.add_argument("--redis-url", default=None,
                   help="redis://[:password@]host:port/db (default: $REDIS_URL)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")


def add_role_parsers(sub: argparse._SubParsersAction) -> None:
    """``memup actor``, ``memup scorer``, ``memup learner``."""
    helps = {"actor": "run one actor process (envs + policy inference + fragment publishing)",
             "scorer": "run one scorer (detector scoring loop + ZeroMQ segment server)",
             "learner": "run the learner (MemUP + PPO updates, weights, checkpoints)"}
    for role, text in helps.items():
        p = sub.add_parser(role, help=text, description=text, formatter_class=HelpFormatter,
                           epilog=ROLE_EXAMPLES[role])
        add_cluster_flags(p)
        if role != "learner":
            p.add_argument("--replica", default=os.environ.get("MEMUP_REPLICA", "0"),
                           help="stable replica id (ordinal or pod name; 'auto': this "
                                "host's name, e.g. a container's): the consumer name, so a "
                                "restarted replica finds its own pending work "
                                "(default: $MEMUP_REPLICA or 0)")
        p.set_defaults(run=_runner(role))


def add_keys_parser(sub: argparse._SubParsersAction) -> None:
    """``memup keys DIR``: CURVE keys for the segment feed."""
    p = sub.add_parser("keys", help="create ZeroMQ CURVE keys for scorers and learners",
                       formatter_class=HelpFormatter,
                       description="Creates DIR/server.key(_secret), DIR/learner.key(_secret) "
                       "and DIR/clients/learner.key (the learners scorers accept). Then set "
                       "zmq.curve_keys=DIR on every scorer and learner; ship only what each "
                       "needs (scorers: server.key_secret + clients/; learners: "
                       "learner.key_secret + server.key).",
                       epilog="examples:\n  memup keys /etc/memup/curve\n"
                              "  memup up --set zmq.curve_keys=/etc/memup/curve\n")
    p.add_argument("directory", type=Path, help="where to write the keys (created)")
    p.set_defaults(run=_create_keys)


def _create_keys(args: argparse.Namespace) -> int:
    from common.curve import create_keys

    out = create_keys(args.directory)
    print(f"CURVE keys in {out}; use --set zmq.curve_keys={out} on scorers and learners")
    return 0


def load_cluster_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The resolved config of a cluster command, or exit 2 with the reason."""
    from common.config import ConfigError, load_config
    from tasks.registry import task_for

    overrides = list(args.overrides)
    if args.redis_url:
        overrides.insert(0, f"redis.url={args.redis_url}")
    try:
        config = load_config(args.cluster_config, overrides)
        task_for(config)  # the task checks its own fields (and that task.env names one)
        return config
    except (ConfigError, ValueError) as exc:
        print(f"memup: bad config: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def setup_logging(level: str, role: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s")


def _wait_for_redis(url: str, role: str, stop: threading.Event) -> bool:
    """Connects once before the role starts; while Redis is unreachable or refuses the
    password, one line per failed try and a retry, the wait doubling up to a minute (a role
    on another host has no supervisor, and under docker's restart policy an exit would be a
    crash loop). False when stopped (SIGTERM / Ctrl-C) meanwhile."""
    from common.redis_io import FatalRedisError, ServiceUnavailable, connect

    delay = 5.0
    while not stop.is_set():
        try:
            connect(url, client_name=f"{role}-probe").close()
            return True
        except (ServiceUnavailable, FatalRedisError) as exc:
            logging.getLogger(role).error("%s; retrying in %.0f s", exc, delay)
        if stop.wait(delay):
            break
        delay = min(2 * delay, 60.0)
    return False


def _runner(role: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from cli.options import resolve_device
        from common.lifecycle import StopSignal
        from common.redis_io import FatalRedisError, ServiceUnavailable

        config = load_cluster_config(args)
        setup_logging(args.log_level, role)
        if not config.redis.url:
            print(f"memup {role}: no Redis: set REDIS_URL (or --redis-url), or run the whole "
                  "cluster with `memup up`", file=sys.stderr)
            return 2
        # One long line nobody reads at INFO: `memup up` and the learner keep it in the
        # run's config.json.
        logging.getLogger(role).debug("resolved config: %s", json.dumps(config.redacted()))
        logging.getLogger(role).info("run %s, config %s (resolved: --log-level DEBUG)",
                                     config.run.name, args.cluster_config or "defaults")
        replica = str(getattr(args, "replica", "0"))
        if replica == "auto":
            replica = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64] or "0"
        replica = int(replica) if replica.isdigit() else replica
        with StopSignal() as stop:
            if not _wait_for_redis(config.redis.url, role, stop.event):
                return 4
            try:
                if role == "actor":
                    from actor.main import run_actor
                    return run_actor(config, replica, stop.event)
                if role == "scorer":
                    from scorer.main import run_scorer
                    return run_scorer(config, replica, stop.event,
                                      resolve_device(config.run.device, "run.device"))
                from learner.main import run_learner
                return run_learner(config, stop.event,
                                   resolve_device(config.run.device, "run.device"))
            except (ServiceUnavailable, FatalRedisError) as exc:
                logging.getLogger(role).error("%s", exc)
                return 4
    return run
