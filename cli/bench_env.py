"""``memup bench env``: raw env steps/s and frames/s under uniform random actions.

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
from typing import Any

import numpy as np

from cli.options import HelpFormatter

EXAMPLES = """examples:
  memup bench env                                  # Two-Colors standard, 1 env, 5,000 steps
  memup bench env --env two-colors --envs 2 --steps 3000 --json
  memup bench env --env two-colors --variant delay --frame-skip 4
  memup bench env --env tmaze --steps 100000
"""


def add_env_bench_parser(kinds: argparse._SubParsersAction) -> None:
    """Registers ``memup bench env`` under ``memup bench``."""
    p = kinds.add_parser(
        "env", formatter_class=HelpFormatter, epilog=EXAMPLES,
        help="raw env agent steps/s and frames/s per core, uniform random actions",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""))
    p.add_argument("--env", default="two-colors", choices=["two-colors", "tmaze"],
                   help="the environment")
    p.add_argument("--steps", type=int, default=5000, help="agent steps per env")
    p.add_argument("--envs", type=int, default=1, help="envs stepped round-robin")
    p.add_argument("--variant", default="standard", choices=["standard", "hard", "delay"],
                   help="Two-Colors variant")
    p.add_argument("--frame-skip", type=int, default=2, help="Two-Colors tics per agent step")
    p.add_argument("--length", type=int, default=100, help="T-Maze corridor length")
    p.add_argument("--seed", type=int, default=0, help="seeds the envs and the actions")
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


def _make_envs(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    if args.env == "tmaze":
        from actor.envs.tmaze import TMazeEnv

        envs = [TMazeEnv(mode="LNR", length=args.length) for _ in range(args.envs)]
        return envs, {"length": args.length, "frame_skip": 1, "resolution": None}
    from actor.envs.two_colors import FRAME_SHAPE, TwoColorsEnv

    envs = [TwoColorsEnv(variant=args.variant, frame_skip=args.frame_skip, seed=args.seed + i)
            for i in range(args.envs)]
    return envs, {"variant": args.variant, "frame_skip": args.frame_skip,
                  "resolution": "320x180 rendered, area-resized to "
                                f"{FRAME_SHAPE[2]}x{FRAME_SHAPE[1]} RGB"}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Steps every env ``args.steps`` times with uniform random actions; returns rates."""
    if args.steps < 1 or args.envs < 1:
        raise SystemExit("--steps and --envs must be >= 1")
    envs, conditions = _make_envs(args)
    rng = np.random.default_rng(args.seed)
    try:
        for i, env in enumerate(envs):
            env.reset(seed=args.seed + i)
        n_actions = int(envs[0].action_space.n)
        actions = rng.integers(0, n_actions, size=(args.steps, len(envs)))
        episodes = 0
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        for row in actions:
            for env, action in zip(envs, row):
                _, _, terminated, truncated, _ = env.step(int(action))
                if terminated or truncated:
                    episodes += 1
                    env.reset()
        wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    finally:
        for env in envs:
            close = getattr(env, "close", None)
            if close:
                close()
    steps = args.steps * len(envs)
    skip = conditions["frame_skip"]
    return {"env": args.env, **conditions, "envs": len(envs), "agent_steps": steps,
            "episodes_ended": episodes, "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3), "cpu_count": os.cpu_count(),
            "steps_per_s_wall": round(steps / wall, 1),
            "steps_per_s_per_core": round(steps / max(cpu, 1e-9), 1),
            "frames_per_s_wall": round(steps * skip / wall, 1),
            "frames_per_s_per_core": round(steps * skip / max(cpu, 1e-9), 1)}


def run_env_bench(args: argparse.Namespace) -> int:
    """Prints the measurement as a table, or as JSON with ``--json``."""
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return 0
    what = (f"Two-Colors {result['variant']}, {result['resolution']}, "
            f"frame skip {result['frame_skip']}" if args.env == "two-colors"
            else f"T-Maze-LNR-{result['length']}")
    print(f"{what}; {result['envs']} env(s), {result['agent_steps']} agent steps, "
          f"{result['episodes_ended']} episodes ended, {result['cpu_count']} CPUs")
    print(f"{'rate':<22} {'wall':>10} {'per core':>10}")
    for name, key in (("agent steps/s", "steps_per_s"), ("frames/s", "frames_per_s")):
        print(f"{name:<22} {result[key + '_wall']:>10.0f} {result[key + '_per_core']:>10.0f}")
    print(f"(wall {result['wall_seconds']} s, CPU {result['cpu_seconds']} s incl. engines)")
    return 0
