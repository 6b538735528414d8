"""``memup eval``: a run's final policy on fresh episodes, in-process.

Loads the learner's checkpoint of a run (the frozen memory and the policy heads, or the
PPO-LSTM), plays N fresh episodes in one process with batched inference over ``--envs``
env slots, and reports the results with the policy sampling its actions (as in training)
and greedy. T-Maze: the success rate. Two-Colors: mean return, survival, the share of good
pickups, and survival to the timeout per pillar colour; ``--record`` writes greedy episodes
as a GIF or MP4. No Redis, no other role.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cli.options import HelpFormatter, positive_int

EXAMPLES = """examples:
  memup eval runs/tmaze-lnr-1000                    # 200 episodes, sampled and greedy
  memup eval runs/tmaze-lnr-1000-lstm10 --episodes 500 --json
  memup eval --checkpoint runs/two-colors/checkpoints/learner.pt --env two-colors \\
      --episodes 50 --record docs/img/two_colors_greedy.gif
"""

FPS = 17.5  # 35 tics per second at frame skip 2


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="a run's final policy on fresh episodes",
                       description=__doc__, formatter_class=HelpFormatter, epilog=EXAMPLES)
    p.add_argument("run_dir", type=Path, nargs="?", help="the run's directory (runs/<name>)")
    p.add_argument("--checkpoint", type=Path, help="a learner.pt inside a run directory "
                   "(instead of run_dir)")
    p.add_argument("--env", help="refuse to run unless the run's task is this env")
    p.add_argument("--episodes", type=positive_int, default=200, help="fresh episodes per mode")
    p.add_argument("--envs", type=positive_int, default=16, help="envs played side by side")
    p.add_argument("--seed", type=int, default=12345, help="seeds the envs and the sampling")
    p.add_argument("--record", type=Path, help="write the first greedy episodes to this "
                   ".gif or .mp4")
    p.add_argument("--record-episodes", type=positive_int, default=1, help="episodes to record")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_eval)


def play(policy, config, episodes: int, seed: int, slots: int,  # type: ignore[no-untyped-def]
         record: int = 0) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Plays ``episodes`` fresh episodes on ``slots`` envs; per-episode results and the
    captioned frames of the first ``record`` episodes (slot 0's)."""
    from cli.record import caption
    from tasks.registry import task_for

    task = task_for(config)
    envs = [task.make_env(slot) for slot in range(slots)]
    started = list(range(slots))  # episode number running in each slot
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    prev_a = np.full(slots, -1, dtype=np.int64)
    prev_r = np.zeros(slots, dtype=np.float32)
    returns = np.zeros(slots)
    lengths = np.zeros(slots, dtype=np.int64)
    results: list[dict[str, Any]] = []
    frames: list[np.ndarray] = []
    running = np.ones(slots, dtype=bool)
    while running.any():
        actions, _, _ = policy.act(task.step_inputs(obs, prev_a, prev_r), prev_a < 0)
        for i in np.flatnonzero(running):
            if i == 0 and started[0] < record and task.spec.frames:
                frames.append(caption(obs[0], f"episode {started[0] + 1}  step "
                                      f"{lengths[0]}  return {returns[0]:+.2f}"))
            o, reward, terminated, truncated, info = envs[i].step(int(actions[i]))
            obs[i], prev_a[i], prev_r[i] = o, actions[i], reward
            returns[i] += reward
            lengths[i] += 1
            if not (terminated or truncated):
                continue
            results.append(summary(task, float(reward), int(lengths[i]), float(returns[i]),
                                   info))
            nxt = max(started) + 1
            if nxt >= episodes:
                running[i] = False
                continue
            started[i] = nxt
            obs[i] = envs[i].reset(seed=seed + nxt)[0]
            prev_a[i], prev_r[i], returns[i], lengths[i] = -1, 0.0, 0.0, 0
    for env in envs:
        env.close()
    return results, frames


def summary(task, final_reward: float, steps: int, total: float,  # type: ignore[no-untyped-def]
            info: dict[str, Any]) -> dict[str, Any]:
    """One finished episode's record, with the task's own measures."""
    return {"success": bool(task.succeeded(final_reward, steps, total)), "steps": steps,
            "return": total, **task.episode_stats(info)}


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over episodes; Two-Colors adds pickups and per-colour survival."""
    out: dict[str, Any] = {
        "success": float(np.mean([r["success"] for r in results])),
        "mean_return": float(np.mean([r["return"] for r in results])),
        "mean_steps": float(np.mean([r["steps"] for r in results])),
        "env_steps": int(sum(r["steps"] for r in results))}
    if "pillar" in results[0]:
        good, bad = sum(r["good"] for r in results), sum(r["bad"] for r in results)
        out["good_pickups"], out["bad_pickups"] = good, bad
        out["good_share"] = good / (good + bad) if good + bad else float("nan")
        for colour in ("red", "green"):
            mine = [r for r in results if r["pillar"] == colour]
            out[f"{colour}_episodes"] = len(mine)
            out[f"{colour}_success"] = (float(np.mean([r["success"] for r in mine]))
                                        if mine else float("nan"))
            out[f"{colour}_mean_return"] = (float(np.mean([r["return"] for r in mine]))
                                            if mine else float("nan"))
    return out


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from actor.policy import ActingPolicy
    from cli.record import RecordError, check_target, write_video
    from cli.run_dir import RunDirError, load_run

    run_dir = args.run_dir or (args.checkpoint.parent.parent if args.checkpoint else None)
    if run_dir is None:
        print("memup eval: give a run directory or --checkpoint", file=sys.stderr)
        return 2
    try:
        config, state = load_run(run_dir)
    except RunDirError as exc:
        print(f"memup eval: {exc}", file=sys.stderr)
        return 2
    if args.env and args.env != config.task.env:
        print(f"memup eval: {run_dir} trained on {config.task.env!r}, not {args.env!r}",
              file=sys.stderr)
        return 2
    if args.record:
        from tasks.registry import task_for

        if not task_for(config).spec.frames:
            print(f"memup eval: --record: {config.task.env!r} has no frames to record (only "
                  "image tasks such as two-colors can be recorded); drop --record",
                  file=sys.stderr)
            return 2
        try:
            check_target(args.record)
        except RecordError as exc:
            print(f"memup eval: --record: {exc}", file=sys.stderr)
            return 2
    torch.set_num_threads(1)
    result: dict[str, Any] = {"run": config.run.name, "env": config.task.env,
                              "episodes": args.episodes,
                              "policy_version": int(state["versions"]["policy"])}
    for mode in ("sampled", "greedy"):
        slots = max(1, min(args.envs, args.episodes))
        policy = ActingPolicy(config, slots, args.seed, greedy=mode == "greedy")
        if config.ppo.mode == "lstm":
            tensors = {f"lstm.{k}": v for k, v in state["policy"].items()}
        else:
            tensors = {**{f"memory.{k}": v for k, v in state["policy_memory"].items()},
                       **{f"heads.{k}": v for k, v in state["policy"].items()}}
        policy.load(result["policy_version"] or 1, tensors)
        record = args.record_episodes if args.record and mode == "greedy" else 0
        episodes, frames = play(policy, config, args.episodes, args.seed, slots, record)
        result[mode] = aggregate(episodes)
        if record:
            try:
                write_video(frames, args.record, FPS)
            except RecordError as exc:
                print(f"memup eval: {exc}", file=sys.stderr)
                return 2
            result["recording"] = str(args.record)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['run']} ({result['env']}): policy version {result['policy_version']}, "
          f"{args.episodes} fresh episodes per mode")
    for mode in ("sampled", "greedy"):
        r = result[mode]
        line = f"  {mode:8s} success {r['success']:.3f}  return {r['mean_return']:.2f}  " \
               f"steps {r['mean_steps']:.0f}"
        if "good_share" in r:
            line += (f"  good pickups {r['good_pickups']}/{r['good_pickups'] + r['bad_pickups']}"
                     f"  survival red {r['red_success']:.2f} green {r['green_success']:.2f}")
        print(line)
    if "recording" in result:
        print(f"  recording: {result['recording']}")
    return 0
