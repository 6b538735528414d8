"""The ``memup train`` jobs: build the task, its nets and protocol, and drive them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cli.driver import StopRule, drive
from cli.options import fail, resolve_device
from common.runlog import RunLog
from memup.config import AlternatingSchedule, UpdateConfig, WalkConfig
from memup.detector import TargetRule
from memup.episode import Episode
from memup.evaluate import evaluate, final_steps, last_steps
from memup.training import AlternatingTraining, MemoryTraining
from tasks.sequence import RECALL_SYMBOLS, add_episodes, copy_episodes
from tasks.sequence.networks import add_nets, copy_nets
from tasks.tmaze.env import lazy_tmaze_episode, lazy_tmaze_episodes, random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets

# Settings a resumed run must share with its checkpoint (they shape the nets or the walk).
TMAZE_FIXED = ("length", "mode", "lanes", "rollout", "chrono_horizon", "interaction", "lazy",
               "stagger")
# Fixed settings added later, with the value every checkpoint written before them had.
TMAZE_ADDED = {"lazy": False, "stagger": False}
COPY_FIXED = ("length", "scattered", "schedule", "lanes", "rollout", "train_size", "warmup",
              "memory_updates", "predictor_updates", "top_k", "frequency", "chrono_horizon",
              "interaction", "stagger")
COPY_ADDED = {"stagger": False}
ADD_FIXED = ("length", "lanes", "rollout", "top_k", "frequency", "chrono_horizon",
             "interaction")


def _setup(args: argparse.Namespace, name: str) -> tuple[torch.device, RunLog]:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    run_dir = args.run_dir or Path("runs") / f"{name}-s{args.seed}"
    has_checkpoint = (run_dir / "checkpoint.pt").exists()
    if has_checkpoint and not args.resume:
        fail(f"{run_dir} already holds a run: add --resume to continue it, or choose another "
             "--run-dir")
    if args.resume and not has_checkpoint:
        fail(f"--resume: {run_dir} has no checkpoint.pt; drop --resume to start a new run "
             "there, or point --run-dir at an existing run")
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k != "run"}
    config.update(device=str(device), torch_threads=torch.get_num_threads(),
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), pid=os.getpid())
    log = RunLog(run_dir, config)
    print(f"run {run_dir}: resolved config in {log.dir / 'config.json'}", file=sys.stderr)
    return device, log


def _finish(log: RunLog, record: dict, metric: str = "accuracy") -> int:
    print(json.dumps({"run_dir": str(log.dir), **record}))
    summary = (f"after {record.get('updates')} updates, "
               f"{record.get('wall_seconds', 0) / 60:.1f} min; curves in {log.dir}/{metric}.png")
    if record.get("solved"):
        print(f"solved {summary}; the trained networks are in {log.dir}/checkpoint.pt",
              file=sys.stderr)
    else:
        print(f"not solved {summary}. Continue with: --resume --run-dir {log.dir} and a "
              "larger --max-updates or --max-minutes", file=sys.stderr)
    return 0


def run_tmaze(args: argparse.Namespace) -> int:
    """T-Maze phase I until the held-out final-step accuracy target (or a limit)."""
    device, log = _setup(args, f"tmaze-{args.mode.lower()}-{args.length}")
    horizon = args.length if args.chrono_horizon < 0 else args.chrono_horizon
    nets = tmaze_nets(chrono_horizon=horizon or None, interaction=args.interaction)
    nets.memory.to(device)
    nets.predictor.to(device)
    source_rng = np.random.default_rng(args.seed)
    episodes = lazy_tmaze_episodes if args.lazy else random_tmaze_episodes
    test = episodes(args.eval_episodes, args.length, args.mode,
                    np.random.default_rng(args.seed + 1_000_003))
    training = MemoryTraining(
        nets, lambda n: episodes(n, args.length, args.mode, source_rng),  # type: ignore[arg-type,return-value]
        source_rng, TargetRule(top_k=1, current=True),
        WalkConfig(args.lanes, args.rollout, 1),
        UpdateConfig(lr=args.lr, ema_decay=args.ema_decay), seed=args.seed, device=device,
        lazy=lazy_tmaze_episode if args.lazy else None, stagger=args.stagger)
    record = drive(
        training,
        lambda: evaluate(nets.memory, nets.predictor, test, final_steps(test), nets.kind,
                         device=device),
        log, StopRule(args.max_updates, args.max_minutes, args.target_accuracy, args.confirm),
        args.eval_every, args.resume, f"T-Maze-{args.mode}-{args.length} r={args.rollout}",
        {k: getattr(args, k) for k in TMAZE_FIXED}, TMAZE_ADDED)
    return _finish(log, record)


def run_copy(args: argparse.Namespace) -> int:
    """Copy-N with alternating phases until the recall accuracy target (or a limit)."""
    blanks = args.length - 2 * RECALL_SYMBOLS
    if blanks < 1:
        fail(f"--length {args.length}: Copy-N needs N > {2 * RECALL_SYMBOLS} (10 symbols + "
             "10 recall markers + at least one blank)")
    if not 1 <= args.frequency <= args.rollout:
        fail(f"--frequency {args.frequency} must be between 1 and --rollout {args.rollout}")
    name = f"{'scattered-' if args.scattered else ''}copy-{args.length}"
    device, log = _setup(args, name)
    horizon = args.length if args.chrono_horizon < 0 else args.chrono_horizon
    nets = copy_nets(chrono_horizon=horizon or None, interaction=args.interaction)
    nets.memory.to(device)
    nets.predictor.to(device)
    train = copy_episodes(args.train_size, blanks, np.random.default_rng(args.seed),
                          scattered=args.scattered)
    test = copy_episodes(args.eval_episodes, blanks,
                         np.random.default_rng(args.seed + 1_000_003), scattered=args.scattered)
    source_rng = np.random.default_rng(args.seed + 17)

    def source(n: int) -> list[Episode]:
        # Fresh Episode records: marks are per walk, the arrays are shared read-only.
        picks = source_rng.integers(len(train), size=n)
        return [Episode(train[i].inputs, train[i].queries, train[i].labels) for i in picks]

    if args.schedule == "joint":
        training = MemoryTraining(
            nets, source, source_rng,
            TargetRule(top_k=args.top_k, current=True, context=True),
            WalkConfig(args.lanes, args.rollout, args.frequency),
            UpdateConfig(lr=args.lr, ema_decay=args.ema_per_update, live_context=True),
            seed=args.seed, device=device, stagger=args.stagger)
    else:
        if args.stagger:
            fail("--stagger applies to --schedule joint")
        schedule = AlternatingSchedule(args.warmup, args.memory_updates, args.predictor_updates,
                                       args.ema_per_cycle, args.memory_loss_scale, args.top_k,
                                       args.frequency, args.lr)
        training = AlternatingTraining(nets, source, source_rng,
                                       WalkConfig(args.lanes, args.rollout, 1), schedule,
                                       seed=args.seed, device=device)
        log.log({"schedule": asdict(schedule)})
    positions = last_steps(test, RECALL_SYMBOLS)

    def evaluate_both() -> dict[str, float]:
        ema = evaluate(training.detector.memory, training.detector.predictor, test, positions,
                       nets.kind, device=device)
        online = evaluate(nets.memory, nets.predictor, test, positions, nets.kind,
                          device=device)
        return {**ema, "online_accuracy": online["accuracy"], "online_loss": online["loss"]}

    record = drive(training, evaluate_both, log,
                   StopRule(args.max_updates, args.max_minutes, args.target_accuracy,
                            args.confirm),
                   args.eval_every, args.resume, f"{name} r={args.rollout}",
                   {k: getattr(args, k) for k in COPY_FIXED}, COPY_ADDED)
    return _finish(log, record)


def run_add(args: argparse.Namespace) -> int:
    """Add-N: memory + regression predictor until the held-out last-step MSE target."""
    if not 1 <= args.frequency <= args.rollout:
        fail(f"--frequency {args.frequency} must be between 1 and --rollout {args.rollout}")
    if args.length < 3:
        fail(f"--length {args.length}: Add-N needs N >= 3 (two marks and the last step)")
    device, log = _setup(args, f"add-{args.length}")
    horizon = args.length if args.chrono_horizon < 0 else args.chrono_horizon
    nets = add_nets(chrono_horizon=horizon or None, interaction=args.interaction)
    nets.memory.to(device)
    nets.predictor.to(device)
    test = add_episodes(args.eval_episodes, args.length,
                        np.random.default_rng(args.seed + 1_000_003))
    source_rng = np.random.default_rng(args.seed)
    # Fresh sequences every draw (the adding problem is usually trained on unlimited data).
    training = MemoryTraining(
        nets, lambda n: add_episodes(n, args.length, source_rng), source_rng,
        TargetRule(top_k=args.top_k, current=True),
        WalkConfig(args.lanes, args.rollout, args.frequency),
        UpdateConfig(lr=args.lr, ema_decay=args.ema_decay), seed=args.seed, device=device)
    positions = final_steps(test)

    def evaluate_both() -> dict[str, float]:
        ema = evaluate(training.detector.memory, training.detector.predictor, test, positions,
                       nets.kind, device=device)
        online = evaluate(nets.memory, nets.predictor, test, positions, nets.kind,
                          device=device)
        # Squared error is the regression loss, so the loss at the last step is the MSE.
        return {"mse": ema["loss"], "online_mse": online["loss"]}

    record = drive(training, evaluate_both, log,
                   StopRule(args.max_updates, args.max_minutes, args.target_mse, args.confirm,
                            metric="mse", minimise=True),
                   args.eval_every, args.resume, f"Add-{args.length} r={args.rollout}",
                   {k: getattr(args, k) for k in ADD_FIXED})
    return _finish(log, record, "mse")
