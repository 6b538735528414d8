"""``memup probe`` on a Two-Colors run (:meth:`TwoColorsTask.memory_probe
<tasks.two_colors.task.TwoColorsTask.memory_probe>`): fresh random-policy episodes, the run's
EMA memory and predictor over them, and the linear probes of :mod:`tasks.two_colors.probe`
(what ``cli/probe.py`` describes).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from common.config import ClusterConfig

PILLAR_STEPS = {"standard": 45, "hard": 45, "delay": 50}  # 90 / 90 / 100 tics, frame skip 2


def play_random(config_values: dict, seeds: list[int]) -> list[dict[str, Any]]:
    """Raw steps and the pillar colour of one random-policy episode per seed."""
    from common.config import action_weights, load_config
    from tasks.registry import task_for

    config = load_config(values=config_values, environ={})
    from actor.random_policy import RandomActions

    env = task_for(config).make_env(0, data_policy=True)  # slot 0: the undamaged floor when mixed
    out = []
    weights = action_weights(config.actor.random_action_weights)
    for seed in seeds:
        policy = RandomActions(env.action_space.n, 1, config.actor.random_hold_steps,
                               np.random.default_rng(seed), weights)
        obs, info = env.reset(seed=seed)
        frames, actions, rewards = [], [], []
        while True:
            action = int(policy.sample()[0])
            frames.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        out.append({"obs": np.stack(frames), "action": np.array(actions),
                    "reward": np.array(rewards, dtype=np.float32),
                    "red": int(info["pillar"] == "red")})
    env.close()
    return out


def collect(config, episodes: int, seed: int, workers: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """``episodes`` random-policy episodes, played by ``workers`` processes."""
    import multiprocessing

    from tqdm import tqdm

    seeds = [seed + i for i in range(episodes)]
    values = config.to_dict()
    if workers <= 1:
        return [play_random(values, [s])[0] for s in tqdm(seeds, desc="episodes")]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        jobs = [pool.apply_async(play_random, (values, [s])) for s in seeds]
        return [job.get()[0] for job in tqdm(jobs, desc="episodes")]


def run(args: argparse.Namespace, config: ClusterConfig, state: dict[str, Any]) -> int:
    """Probes the memory of the run whose ``config`` and checkpoint ``state`` were loaded
    from ``args.run_dir``; prints a table, or JSON with ``args.json``; the exit code."""
    import torch

    from memup.detector import SurpriseDetector
    from memup.episode import Episode
    from tasks.registry import task_for
    from tasks.two_colors.probe import colour_probe, pickup_signs, window_signs

    vanished = PILLAR_STEPS.get(config.task.variant, 45)
    step = vanished + max(args.after)
    length = args.length or config.task.length
    if args.length < 0 or step >= length:
        print(f"memup probe: --after {max(args.after)} reads the memory at step {step}, beyond "
              f"episodes of {length} steps; pass a larger --length (e.g. --length 1050)",
              file=sys.stderr)
        return 2
    config = replace(config, task=replace(config.task, length=length))
    torch.set_num_threads(max(1, args.workers))
    task = task_for(config)
    nets = task.networks(config)
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, config.memup.ema_decay)
    detector.load_state_dict(state["detector"])
    played = collect(config, args.episodes, args.seed, args.workers)
    episodes = [Episode(*task.encode(p["obs"], p["action"], p["reward"])) for p in played]
    bits = np.array([p["red"] for p in played])
    result: dict[str, Any] = {
        "run": config.run.name, "memup_updates": int(state["memup_updates"]),
        "episodes": len(episodes), "mean_length": float(np.mean([len(e) for e in episodes])),
        "red_share": float(bits.mean()),
        "colour": [{"after": after, **colour_probe(detector.memory, episodes, bits,
                                                    vanished + after, swap_steps=vanished)}
                   for after in args.after],
        "pickups": pickup_signs(detector.memory, detector.predictor, episodes),
        "window": window_signs(detector.memory, detector.predictor, episodes,
                               config.memup.rollout - 1, config.memup.rollout),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    pickups = result["pickups"]
    print(f"{result['run']} after {result['memup_updates']} MemUP updates, "
          f"{result['episodes']} fresh random-policy episodes (mean length "
          f"{result['mean_length']:.0f} steps, red {result['red_share']:.2f})")
    for colour in result["colour"]:
        print(f"  pillar colour from m_t at step {colour['step']} ({colour['after']} steps after "
              f"it vanished): {colour['test_accuracy']:.3f} on {colour['n_test']} held-out "
              f"episodes (train {colour['train_accuracy']:.3f}, L2 {colour['l2']:g} by "
              "cross-validation)")
        if colour["n_swapped"]:
            print(f"    control: with the first {vanished} steps of an episode of the other "
                  f"colour, the answer follows that pillar in {colour['swap_follows_swapped']:.3f}"
                  f" of {colour['n_swapped']} (≈ the accuracy: read from the pillar; ≈ 1 − it: "
                  "from the steps after)")
    print(f"  pickup reward sign, {pickups['pickups_test']} held-out pickups: predictor with "
          f"memory {pickups['predictor_sign_accuracy']:.3f}, memory-less "
          f"{pickups['memoryless_sign_accuracy']:.3f}")
    window = result["window"]
    if window["pickups"]:
        print(f"  as trained: m_{window['step']} (a rollout's last state) asked about the next "
              f"{config.memup.rollout} steps' {window['pickups']} pickups: sign "
              f"{window['sign_accuracy']:.3f}")
    return 0
