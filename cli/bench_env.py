"""``memup bench env``: raw env steps/s and frames/s under random actions, and what such a
policy gets per episode (return; Two-Colors: items picked up).

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
  # what phase II's starting policy picks up: per-step forward-weighted actions
  memup bench env --steps 10000 --action-weights 1,1,4,0.25,2,0.25,2,0.25
"""


def add_env_bench_parser(kinds: argparse._SubParsersAction) -> None:
    """Registers ``memup bench env`` under ``memup bench``."""
    p = kinds.add_parser(
        "env", formatter_class=HelpFormatter, epilog=EXAMPLES,
        help="raw env agent steps/s and frames/s per core under random actions",
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


def _make_envs(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    if args.env == "tmaze":
        from tasks.tmaze.env import TMazeEnv

        envs = [TMazeEnv(mode="LNR", length=args.length) for _ in range(args.envs)]
        return envs, {"length": args.length, "frame_skip": 1, "resolution": None}
    from tasks.two_colors.env import FRAME_SHAPE, TwoColorsEnv

    envs = [TwoColorsEnv(variant=args.variant, frame_skip=args.frame_skip, seed=args.seed + i)
            for i in range(args.envs)]
    return envs, {"variant": args.variant, "frame_skip": args.frame_skip,
                  "resolution": "320x180 rendered, area-resized to "
                                f"{FRAME_SHAPE[2]}x{FRAME_SHAPE[1]} RGB"}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Steps every env ``args.steps`` times with random actions; returns rates and what the
    ended episodes got."""
    from actor.random_policy import RandomActions
    from common.config import ConfigError, action_weights

    if args.steps < 1 or args.envs < 1 or args.hold < 1:
        raise SystemExit("--steps, --envs and --hold must be >= 1")
    try:
        weights = action_weights(args.action_weights, "--action-weights")
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    envs, conditions = _make_envs(args)
    episodes = Episodes()
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
                    episodes.add(returns[i], info)
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
    return {"env": args.env, **conditions, "envs": len(envs), "agent_steps": steps,
            "action_weights": list(weights) or "uniform", "hold": args.hold,
            **episodes.summary(),
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3), "cpu_count": os.cpu_count(),
            "steps_per_s_wall": round(steps / wall, 1),
            "steps_per_s_per_core": round(steps / max(cpu, 1e-9), 1),
            "frames_per_s_wall": round(steps * skip / wall, 1),
            "frames_per_s_per_core": round(steps * skip / max(cpu, 1e-9), 1)}


class Episodes:
    """What the ended episodes got: return and, in Two-Colors, items picked up."""

    def __init__(self) -> None:
        self.returns: list[float] = []
        self.good = self.bad = 0

    def add(self, episode_return: float, info: dict[str, Any]) -> None:
        """Counts one ended episode from its return and its last step's info."""
        self.returns.append(float(episode_return))
        self.good += int(info.get("good_pickups", 0))
        self.bad += int(info.get("bad_pickups", 0))

    def summary(self) -> dict[str, Any]:
        """Episode count, mean return, pickups per episode and the good share (None where
        no episode or no pickup ended)."""
        n = len(self.returns)
        pickups = self.good + self.bad
        return {"episodes_ended": n,
                "mean_return": round(float(np.mean(self.returns)), 3) if n else None,
                "pickups_per_episode": round(pickups / n, 3) if n else None,
                "good_pickup_share": round(self.good / pickups, 3) if pickups else None}


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
          f"{result['cpu_count']} CPUs; actions {result['action_weights']}, held "
          f"1..{result['hold']} steps")
    print(f"{result['episodes_ended']} episodes ended: mean return {result['mean_return']}"
          + (f", {result['pickups_per_episode']} pickups per episode (good share "
             f"{result['good_pickup_share']})" if args.env == "two-colors" else ""))
    print(f"{'rate':<22} {'wall':>10} {'per core':>10}")
    for name, key in (("agent steps/s", "steps_per_s"), ("frames/s", "frames_per_s")):
        print(f"{name:<22} {result[key + '_wall']:>10.0f} {result[key + '_per_core']:>10.0f}")
    print(f"(wall {result['wall_seconds']} s, CPU {result['cpu_seconds']} s incl. engines)")
    return 0
