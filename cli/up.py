"""``memup up``: a whole cluster on this machine — embedded Redis, every role, a live view.

Before anything starts it reads the run's checkpoint: a finished run is said and left as
it is, a stopped one is resumed (and said), ``--fresh`` moves the old run aside. Redis runs
from ``runs/<run>/redis/`` with an append-only file and is restarted if it dies; the
segment feed is authenticated with per-run CURVE keys in ``runs/<run>/curve/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from cli.options import HelpFormatter
from cli.roles import add_cluster_flags, load_cluster_config, setup_logging

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "up_tmaze_lnr_1000.toml"
"""What `memup up` runs without --config (the checkout's file; defaults match it)."""
CURVE_FILES = ("server.key", "server.key_secret", "learner.key_secret", "clients/learner.key")
"""The key files of a run's CURVE directory (common/curve.py's layout)."""
NO_SERVICE = 4
"""Exit code when Redis cannot be reached or started (the roles use 4 for it too)."""

EXAMPLES = """examples:
  memup up                                             # T-Maze-LNR-1000, phase I then PPO
  memup up --config configs/up_tmaze_lnr_20.toml       # a short maze (about a minute)
  memup up --set actor.replicas=4 --set run.name=wide  # more actors, another run
  memup up --config configs/up_tmaze_lnr_1000_lstm10.toml   # the PPO-LSTM baseline
  memup up --config configs/up_tmaze_lnr_20.toml --fresh    # start that run over
  REDIS_URL=redis://:pw@10.0.0.5:6379/0 memup up       # use an existing Redis

Ctrl-C stops every role cleanly (the learner checkpoints); run the same command again to
resume ("resumed from update N ..."). On a finished run it says "already finished" and
changes nothing; --fresh moves the old run directory aside and starts over. Results:
runs/<run.name>/ (config.json, metrics.jsonl, checkpoints/, logs/, *.png; redis/ holds the
embedded Redis's append-only file, curve/ the run's ZeroMQ CURVE keys).
"""


def add_up_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run a local cluster: Redis + actors + scorers + learner",
                       description="Start an embedded Redis (unless REDIS_URL is set) and "
                       "every role as a supervised subprocess; show live progress.",
                       formatter_class=HelpFormatter, epilog=EXAMPLES)
    add_cluster_flags(p)
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop the run after this much wall time (0 = until the learner ends)")
    p.add_argument("--fresh", action="store_true",
                   help="start the run over: move runs/<run.name>/ aside to "
                        "runs/<run.name>.<UTC time> (and clear the run's keys in an "
                        "external Redis) instead of resuming it")
    p.set_defaults(run=run_up)


def _fail(message: str, code: int) -> int:
    print(f"memup up: {message}", file=sys.stderr)
    return code


def run_up(args: argparse.Namespace) -> int:
    """Runs the cluster until the learner finishes, the time limit, or Ctrl-C."""
    if args.cluster_config is None and DEFAULT_CONFIG.is_file():
        args.cluster_config = DEFAULT_CONFIG
    config = load_cluster_config(args)
    setup_logging(args.log_level, "up")
    from common.redis_io import FatalRedisError, ServiceUnavailable, connect

    run_dir = Path(config.run.dir) / config.run.name
    if config.run.device not in ("auto", "cpu"):  # cuda / mps: present on this machine?
        from cli.options import resolve_device
        resolve_device(config.run.device, "run.device")
    state = None if args.fresh else _checkpoint_state(run_dir)
    if isinstance(state, str):
        return _fail(state, 2)
    if state is not None and state.get("done"):
        print(f"already finished: {config.run.name}: {reached(run_dir, state)}; results in "
              f"{run_dir}", file=sys.stderr)
        return 0
    external = None
    if config.redis.url:  # reached before anything is written: a dead one leaves no trace
        try:
            external = connect(config.redis.url, client_name="memup-up")
        except (ServiceUnavailable, FatalRedisError) as exc:
            return _fail(str(exc), NO_SERVICE)
    if args.fresh:
        _start_over(run_dir, config.run.name, external)
    if state is not None:
        print(resumed_from(state), file=sys.stderr)
    overrides = list(args.overrides)
    if not config.zmq.curve_keys:
        keys_dir = _curve_keys(run_dir)
        if isinstance(keys_dir, str):
            return _fail(keys_dir, 2)
        overrides.append(f"zmq.curve_keys={keys_dir}")
        config = dataclasses.replace(config, zmq=dataclasses.replace(
            config.zmq, curve_keys=str(keys_dir)))
    from common.runlog import RunLog

    RunLog(run_dir, config.redacted())
    print(f"run {config.run.name}: resolved config in {run_dir / 'config.json'}",
          file=sys.stderr)
    return _serve(args, config, run_dir, overrides, external)


def _serve(args: argparse.Namespace, config: Any, run_dir: Path, overrides: list[str],
           external: Any) -> int:
    """Runs the cluster on ``external`` Redis, or on an embedded one it starts and stops."""
    from common.embedded_redis import EmbeddedRedis
    from common.redis_io import FatalRedisError, ServiceUnavailable, connect, redact_url

    embedded = None
    try:
        if external is not None:
            log.info("using the Redis at %s", redact_url(config.redis.url))
            return _run_cluster(args, config, run_dir, overrides, config.redis.url, external,
                                None)
        embedded = EmbeddedRedis(data_dir=str(run_dir / "redis"), appendonly=True,
                                 maxmemory=config.redis.embedded_maxmemory)
        try:
            embedded.start()
        except RuntimeError as exc:
            return _fail(f"cannot start the embedded Redis: {str(exc).splitlines()[0]} "
                         f"(log: {run_dir / 'redis' / 'redis.log'})", NO_SERVICE)
        log.info("embedded Redis on 127.0.0.1:%d (password-protected, maxmemory %s, "
                 "append-only file in %s)", embedded.port, config.redis.embedded_maxmemory,
                 embedded.data_dir)
        r = connect(embedded.url, client_name="memup-up")
        return _run_cluster(args, config, run_dir, overrides, embedded.url, r, embedded)
    except (ServiceUnavailable, FatalRedisError) as exc:
        return _fail(str(exc), NO_SERVICE)
    finally:
        if embedded is not None:
            embedded.stop()


def _run_cluster(args: argparse.Namespace, config: Any, run_dir: Path, overrides: list[str],
                 url: str, r: Any, embedded: Any) -> int:
    """Starts the roles, keeps them (and an embedded Redis) running, shows the status."""
    from cli.status_view import StatusView
    from cli.supervisor import Child, RedisKeeper, Supervisor, role_argv
    from common import keys
    from common.lifecycle import StopSignal
    from common.metrics import SupervisorMetrics, serve_metrics
    from common.redis_io import RetryPolicy, with_retry

    env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    children = [Child("learner-0", "learner", role_argv("learner", None, args.cluster_config,
                                                        overrides), run_dir / "logs/learner.log")]
    for role, count in (("scorer", config.scorer.replicas), ("actor", config.actor.replicas)):
        for i in range(count):
            children.append(Child(f"{role}-{i}", role,
                                  role_argv(role, i, args.cluster_config, overrides),
                                  run_dir / f"logs/{role}-{i}.log"))
    # A done flag left by an earlier, finished run would stop the new roles at once.
    with_retry(lambda: r.hdel(keys.control_key(config.run.name), "done"), retry=RetryPolicy(),
               what="clearing the run's done flag")
    metrics = SupervisorMetrics()
    port = serve_metrics(metrics.registry, 0)
    log.info("supervisor metrics (restarts, running roles) on http://127.0.0.1:%d/metrics", port)
    supervisor = Supervisor(children, env, metrics)
    keeper = RedisKeeper(embedded, metrics) if embedded is not None else None
    view = StatusView(r, config.run.name)
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    with StopSignal() as stop:
        supervisor.start()
        try:
            while not stop.is_set() and supervisor.finished is None:
                if keeper is not None:
                    keeper.poll()
                supervisor.poll()
                view.note_learner()
                view.draw()
                if deadline is not None and time.monotonic() > deadline:
                    log.info("the %.0f-minute limit is reached; stopping", args.max_minutes)
                    break
                stop.wait(0.5)
            summary = view.draw(force=True) or {}
        finally:
            log.info("stopping the roles (the learner saves a checkpoint)...")
            supervisor.stop()
    done = supervisor.finished is not None
    print_summary(run_dir, config.run.name, done, summary.get("elapsed_s", 0.0))
    return 0


def _checkpoint_state(run_dir: Path) -> dict[str, Any] | str | None:
    """The learner checkpoint's counts (None without one; the reason as text when it is
    unreadable)."""
    path = run_dir / "checkpoints" / "learner.pt"
    if not path.is_file():
        return None
    from common.checkpoint import CheckpointError, load_checkpoint

    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        return f"{exc} Or run with --fresh (the old run directory is kept aside)."
    return {k: state.get(k) for k in ("done", "phase", "memup_updates", "ppo_updates",
                                      "env_steps")}


def _start_over(run_dir: Path, run: str, external: Any) -> None:
    """``--fresh``: the old run directory moves aside; an external Redis loses the run's keys
    (the embedded one's data moves with the directory)."""
    if run_dir.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = run_dir.with_name(f"{run_dir.name}.{stamp}")
        n = 1
        while aside.exists():
            aside, n = run_dir.with_name(f"{run_dir.name}.{stamp}-{n}"), n + 1
        run_dir.rename(aside)
        print(f"--fresh: moved the old {run_dir} aside to {aside}", file=sys.stderr)
    if external is not None:
        from common import keys

        stale = list(external.scan_iter(match=keys.prefix(run) + "*", count=1000))
        for i in range(0, len(stale), 500):
            external.unlink(*stale[i:i + 500])
        if stale:
            print(f"--fresh: deleted the {len(stale)} Redis keys of run {run}",
                  file=sys.stderr)


def _curve_keys(run_dir: Path) -> Path | str:
    """The run's CURVE key directory, created on first use (the reason as text if it
    cannot be)."""
    out = (run_dir / "curve").resolve()
    if all((out / name).is_file() for name in CURVE_FILES):
        log.info("ZeroMQ CURVE keys of this run: %s", out)
        return out
    from common.curve import CurveError, create_keys

    try:
        create_keys(out)
    except (CurveError, OSError) as exc:
        return (f"cannot create the run's CURVE keys in {out} ({exc}); set "
                "zmq.curve_keys to a key directory made by `memup keys DIR`")
    os.chmod(out, 0o700)  # the secret keys: readable by this user only
    log.info("created ZeroMQ CURVE keys for this run in %s", out)
    return out


def resumed_from(state: dict[str, Any]) -> str:
    """The terminal's line for a resumed run (the phase's own update count)."""
    phase = int(state.get("phase") or 1)
    updates = int(state.get("ppo_updates" if phase == 2 else "memup_updates") or 0)
    return (f"resumed from update {updates} (phase {phase}), "
            f"{int(state.get('env_steps') or 0):,} env steps")


def reached(run_dir: Path, state: dict[str, Any] | None = None) -> str:
    """What the run reached, from the learner's metrics log (the source of truth); from
    the checkpoint's counts when there is no log."""
    from common.runlog import read_records

    records = read_records(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    one = [r for r in records if r.get("phase") == 1]
    two = [r for r in records if r.get("phase") == 2]
    parts = []
    if one:
        parts.append(f"phase I: memory accuracy {one[-1]['memory_accuracy']:.3f} after "
                     f"{one[-1]['update']} updates")
    if two:
        parts.append(f"phase II: success {two[-1]['success']:.3f} after "
                     f"{two[-1]['ppo_update']} PPO updates, {two[-1]['env_steps']:,} env steps")
    if not parts and state is not None:
        parts.append(f"{int(state.get('memup_updates') or 0)} MemUP and "
                     f"{int(state.get('ppo_updates') or 0)} PPO updates, "
                     f"{int(state.get('env_steps') or 0):,} env steps")
    return "; ".join(parts) or "no evaluation logged"


def print_summary(run_dir: Path, run: str, done: bool, elapsed_s: float) -> None:
    """The run's outcome, from the learner's metrics log (the source of truth)."""
    head = f"run {run}: {'finished' if done else 'stopped'} after {elapsed_s / 60:.1f} min"
    text = reached(run_dir)
    print("\n" + head + ("" if text == "no evaluation logged" else f"; {text}"),
          file=sys.stderr)
    hint = "" if done else "; run the same command again to resume"
    print(f"results in {run_dir}/ (metrics.jsonl, *.png, checkpoints/, logs/){hint}",
          file=sys.stderr)
