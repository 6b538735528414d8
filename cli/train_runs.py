"""The ``memup train`` jobs: a run's setup and summary, and T-Maze phase I (the
sequence tasks' runner is :mod:`cli.train_sequence`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cli.driver import StopRule, drive
from cli.options import fail, resolve_device
from common.runlog import RunLog
from memup.config import UpdateConfig, WalkConfig
from memup.detector import TargetRule
from memup.evaluate import evaluate, final_steps
from memup.training import MemoryTraining
from tasks.tmaze.env import lazy_tmaze_episode, lazy_tmaze_episodes, random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets

# Settings a resumed run must share with its checkpoint (they shape the nets or the walk;
# --skip and --reuse may change: they only decide which rollouts come next).
TMAZE_FIXED = ("length", "mode", "lanes", "rollout", "chrono_horizon", "interaction", "lazy",
               "stagger")
# Fixed settings added later, with the value every checkpoint written before them had.
TMAZE_ADDED = {"lazy": False, "stagger": False}


def setup_run(args: argparse.Namespace, name: str) -> tuple[torch.device, RunLog]:
    """Seeds torch, picks the device and opens the run's directory (default
    ``runs/<name>-s<seed>``) with its resolved config."""
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


def finish_run(log: RunLog, record: dict, metric: str = "accuracy") -> int:
    """Prints the last record and whether the run solved its task (and how to go on)."""
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
    if args.skip % args.rollout:
        fail(f"--skip {args.skip} must be a multiple of --rollout {args.rollout} (lanes move "
             "a rollout at a time)")
    device, log = setup_run(args, f"tmaze-{args.mode.lower()}-{args.length}")
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
        WalkConfig(args.lanes, args.rollout, 1, args.skip, args.reuse),
        UpdateConfig(lr=args.lr, ema_decay=args.ema_decay), seed=args.seed, device=device,
        lazy=lazy_tmaze_episode if args.lazy else None, stagger=args.stagger)
    record = drive(
        training,
        lambda: evaluate(nets.memory, nets.predictor, test, final_steps(test), nets.kind,
                         device=device),
        log, StopRule(args.max_updates, args.max_minutes, args.target_accuracy, args.confirm),
        args.eval_every, args.resume, f"T-Maze-{args.mode}-{args.length} r={args.rollout}",
        {k: getattr(args, k) for k in TMAZE_FIXED}, TMAZE_ADDED)
    return finish_run(log, record)

