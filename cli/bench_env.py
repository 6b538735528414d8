"""``memup bench env``: raw env steps/s and frames/s under random actions, and what such a
policy gets per episode (return, and what the task adds: Two-Colors, items picked up).

Any task runs (``--env``: a registered name, ``gym:<id>`` or ``<module>:<callable>``), built
through the task registry from the task's own benchmark config plus ``--set`` overrides;
its envs are the ones the policy plays.

All envs step round-robin in this one process. ViZDoom runs each game in a child process
(``vizdoom``) that waits while Python works, so the run is about one core busy at a time;
the per-core rates divide by the CPU seconds of this process and its engine children, the
wall rates by elapsed time. Frames = agent steps x frame skip (tics the engine simulated).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cli.options import HelpFormatter

EXAMPLES = """examples:
  memup bench env                                  # Two-Colors standard, 1 env, 5,000 steps
  memup bench env --env two-colors --envs 2 --steps 3000 --json
  memup bench env --env two-colors --variant delay --frame-skip 4
  memup bench env --env tmaze --steps 100000 --set task.length=1000
  memup bench env --env gym:popgym:popgym-RepeatPreviousEasy-v0 --steps 2000
  # what phase II's starting policy picks up: per-step forward-weighted actions
  memup bench env --steps 10000 --action-weights 1,1,4,0.25,2,0.25,2,0.25
"""


def add_env_bench_parser(kinds: argparse._SubParsersAction) -> None:
    """Registers ``memup bench env`` under ``memup bench``."""
    p = kinds.add_parser(
        "env", formatter_class=HelpFormatter, epilog=EXAMPLES,
        help="raw env agent steps/s and frames/s per core under random actions",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""))
    p.add_argument("--env", default="two-colors",
                   help="the task (task.env): two-colors, tmaze, gym:<id>, <module>:<callable>")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value of the task, e.g. --set task.length=100")
    p.add_argument("--steps", type=int, default=5000, help="agent steps per env")
    p.add_argument("--envs", type=int, default=1, help="envs stepped round-robin")
    p.add_argument("--variant", choices=["standard", "hard", "delay"],
                   help="task.variant (Two-Colors)")
    p.add_argument("--frame-skip", type=int, default=None,
                   help="engine tics per agent step (Two-Colors; default: the task's)")
    p.add_argument("--length", type=int, default=None,
                   help="task.length: T-Maze corridor length (default 100), Two-Colors "
                        "episode limit in agent steps (default 1050)")
    p.add_argument("--seed", type=int, default=0, help="seeds the envs and the actions")
    p.add_argument("--action-weights", default="",
                   help="relative weight of each action (default uniform), e.g. "
                        "1,1,4,0.25,2,0.25,2,0.25 (Two-Colors: forward-weighted)")
    p.add_argument("--hold", type=int, default=1,
                   help="each drawn action is held for 1..HOLD steps (phase I's data policy)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_env_bench)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children (the engines)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


def bench_base(env: str) -> tuple[Path | None, list[str]]:
    """Where a benchmark of task ``env`` starts: the task's :attr:`~tasks.base.Task.
    bench_config` file (None: the config defaults) and the overrides that name the task and
    apply its :attr:`~tasks.base.Task.bench_overrides`.

    Raises:
        SystemExit: ``env`` names no task.
    """
    from common.config import ConfigError
    from tasks.registry import task_class

    try:
        cls = task_class(env)
    except ConfigError as error:
        raise SystemExit(f"memup bench: {error}") from None
    path = None if cls.bench_config is None else \
        Path(__file__).resolve().parents[1] / "configs" / cls.bench_config
    return path, [f"task.env={env}", *cls.bench_overrides]


def bench_config(env: str, overrides: list[str]):  # type: ignore[no-untyped-def]
    """The config a benchmark of task ``env`` runs: :func:`bench_base`, then ``overrides``.

    Raises:
        SystemExit: ``env`` names no task, or an override does not apply.
    """
    from common.config import ConfigError, load_config

    path, base = bench_base(env)
    try:
        return path, load_config(path, [*base, *overrides], environ={})
    except ConfigError as error:
        raise SystemExit(f"memup bench: {error}") from None


def _make_envs(args: argparse.Namespace) -> tuple[Any, list[Any], dict[str, Any]]:
    from common.config import ConfigError
    from tasks.registry import task_for

    overrides = list(args.overrides)
    if args.variant is not None:
        overrides.append(f"task.variant={args.variant}")
    if args.length is not None:
        overrides.append(f"task.length={args.length}")
    _, config = bench_config(args.env, overrides)
    try:
        task = task_for(config)
    except ConfigError as error:
        raise SystemExit(f"memup bench: {error}") from None
    if args.frame_skip is not None:
        if args.frame_skip < 1:
            raise SystemExit("--frame-skip must be >= 1")
        if task.frame_skip == 1 and args.frame_skip != 1:
            raise SystemExit(f"--frame-skip: task {args.env!r} has no frame skip")
        task.frame_skip = args.frame_skip
    envs = [task.make_env(slot, data_policy=False) for slot in range(args.envs)]
    return task, envs, {"length": config.task.length, "frame_skip": task.frame_skip,
                        **task.bench_conditions()}


def measure(args: argparse.Namespace, keys: dict[str, list[str]] | None = None
            ) -> dict[str, Any]:
    """Steps every env ``args.steps`` times with random actions; returns rates and what the
    ended episodes got. ``keys`` gets the result's task-specific keys: ``"conditions"``
    (:meth:`~tasks.base.Task.bench_conditions`) and ``"episodes"``
    (:meth:`~tasks.base.Task.bench_episodes`)."""
    from actor.random_policy import RandomActions
    from common.config import ConfigError, action_weights

    if args.steps < 1 or args.envs < 1 or args.hold < 1:
        raise SystemExit("--steps, --envs and --hold must be >= 1")
    try:
        weights = action_weights(args.action_weights, "--action-weights")
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    task, envs, conditions = _make_envs(args)
    returns_ended: list[float] = []
    infos: list[dict[str, Any]] = []
    try:
        for i, env in enumerate(envs):
            env.reset(seed=args.seed + i)
        try:
            policy = RandomActions(int(envs[0].action_space.n), len(envs), args.hold,
                                   np.random.default_rng(args.seed), weights)
        except ValueError as error:
            raise SystemExit(f"--action-weights: {error}") from None
        returns = np.zeros(len(envs))
        first = np.ones(len(envs), dtype=bool)
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        for _ in range(args.steps):
            actions = policy.sample(first)
            for i, (env, action) in enumerate(zip(envs, actions)):
                _, reward, terminated, truncated, info = env.step(int(action))
                returns[i] += reward
                first[i] = terminated or truncated
                if first[i]:
                    returns_ended.append(float(returns[i]))
                    infos.append(info)
                    returns[i] = 0.0
                    env.reset()
        wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    finally:
        for env in envs:
            close = getattr(env, "close", None)
            if close:
                close()
    steps = args.steps * len(envs)
    skip = conditions["frame_skip"]
    extras = task.bench_episodes(infos)
    if keys is not None:
        keys["conditions"] = [k for k in conditions if k not in ("length", "frame_skip")]
        keys["episodes"] = list(extras)
    return {"env": args.env, **conditions, "envs": len(envs), "agent_steps": steps,
            "action_weights": list(weights) or "uniform", "hold": args.hold,
            "episodes_ended": len(returns_ended),
            "mean_return": round(float(np.mean(returns_ended)), 3) if returns_ended else None,
            **extras,
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3), "cpu_count": os.cpu_count(),
            "steps_per_s_wall": round(steps / wall, 1),
            "steps_per_s_per_core": round(steps / max(cpu, 1e-9), 1),
            "frames_per_s_wall": round(steps * skip / wall, 1),
            "frames_per_s_per_core": round(steps * skip / max(cpu, 1e-9), 1)}


def run_env_bench(args: argparse.Namespace) -> int:
    """Prints the measurement as a table, or as JSON with ``--json``."""
    keys: dict[str, list[str]] = {}
    result = measure(args, keys)
    if args.json:
        print(json.dumps(result))
        return 0
    what = ", ".join([f"{result['env']}", f"length {result['length']}",
                      *(f"{key} {result[key]}" for key in keys["conditions"]),
                      f"frame skip {result['frame_skip']}"])
    print(f"{what}; {result['envs']} env(s), {result['agent_steps']} agent steps, "
          f"{result['cpu_count']} CPUs; actions {result['action_weights']}, held "
          f"1..{result['hold']} steps")
    print(f"{result['episodes_ended']} episodes ended: mean return {result['mean_return']}"
          + "".join(f", {key.replace('_', ' ')} {result[key]}" for key in keys["episodes"]))
    print(f"{'rate':<22} {'wall':>10} {'per core':>10}")
    for name, key in (("agent steps/s", "steps_per_s"), ("frames/s", "frames_per_s")):
        print(f"{name:<22} {result[key + '_wall']:>10.0f} {result[key + '_per_core']:>10.0f}")
    print(f"(wall {result['wall_seconds']} s, CPU {result['cpu_seconds']} s incl. engines)")
    return 0
