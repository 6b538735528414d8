"""``memup eval``: the success rate of a run's final policy on fresh episodes, in-process.

Loads the learner's checkpoint of a run (the frozen memory and the policy heads, or the
PPO-LSTM), plays N fresh T-Maze episodes in one process with batched inference, and
reports the success rate with the policy sampling its actions (as in training) and
greedy. No Redis, no other role.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cli.options import HelpFormatter

EXAMPLES = """examples:
  memup eval runs/tmaze-lnr-1000                    # 200 episodes, sampled and greedy
  memup eval runs/tmaze-lnr-1000-lstm10 --episodes 500 --json
"""


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="success rate of a run's final policy on fresh episodes",
                       description=__doc__, formatter_class=HelpFormatter, epilog=EXAMPLES)
    p.add_argument("run_dir", type=Path, help="the run's directory (runs/<run.name>)")
    p.add_argument("--episodes", type=int, default=200, help="fresh episodes per mode")
    p.add_argument("--seed", type=int, default=12345, help="seeds the envs and the sampling")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_eval)


def play(policy, config, episodes: int, seed: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Success rate and env steps of ``episodes`` fresh episodes, all envs side by side."""
    from actor.envs.tmaze import TMazeEnv
    from common.models import task_spec
    from memup.encoding import step_inputs

    spec = task_spec(config)
    envs = [TMazeEnv(config.task.mode, config.task.length) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    prev_a = np.full(episodes, -1, dtype=np.int64)
    prev_r = np.zeros(episodes, dtype=np.float32)
    running = np.ones(episodes, dtype=bool)
    final = np.zeros(episodes, dtype=np.float32)
    steps = 0
    while running.any():
        actions, _, _ = policy.act(step_inputs(obs, prev_a, prev_r, spec.n_actions),
                                   prev_a < 0)
        for i in np.flatnonzero(running):
            o, reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            obs[i], prev_a[i], prev_r[i] = o, actions[i], reward
            steps += 1
            if terminated or truncated:
                running[i] = False
                final[i] = reward
    return float(np.mean(final >= spec.success_reward)), steps


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from actor.policy import ActingPolicy
    from common.checkpoint import CheckpointError, load_checkpoint
    from common.config import load_config

    path = args.run_dir / "checkpoints" / "learner.pt"
    try:
        state = load_checkpoint(path)
        values = json.loads((args.run_dir / "config.json").read_text())
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"memup eval: {exc}", file=sys.stderr)
        return 2
    values["redis"]["url"] = ""  # redacted in the file; eval needs no Redis
    config = load_config(values=values, environ={})
    torch.set_num_threads(1)
    result = {"run": config.run.name, "episodes": args.episodes,
              "policy_version": int(state["versions"]["policy"])}
    for mode in ("sampled", "greedy"):
        policy = ActingPolicy(config, args.episodes, args.seed, greedy=mode == "greedy")
        if config.ppo.mode == "lstm":
            tensors = {f"lstm.{k}": v for k, v in state["policy"].items()}
        else:
            tensors = {**{f"memory.{k}": v for k, v in state["policy_memory"].items()},
                       **{f"heads.{k}": v for k, v in state["policy"].items()}}
        policy.load(result["policy_version"] or 1, tensors)
        success, steps = play(policy, config, args.episodes, args.seed)
        result[f"{mode}_success"] = success
        result["env_steps"] = steps
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['run']}: policy version {result['policy_version']}, "
              f"{args.episodes} fresh episodes each: success {result['sampled_success']:.3f} "
              f"sampling actions, {result['greedy_success']:.3f} greedy")
    return 0
