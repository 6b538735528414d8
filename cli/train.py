"""``memup train …``: single-process MemUP training with no services (T-Maze phase I, Copy)."""

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

from actor.envs.sequence_tasks import RECALL_SYMBOLS, copy_episodes
from actor.envs.tmaze import random_tmaze_episodes
from cli.driver import StopRule, drive
from cli.options import HelpFormatter, add_config_flag, resolve_device
from common.runlog import RunLog
from memup.detector import TargetRule
from memup.episode import Episode
from memup.evaluate import evaluate, final_steps, last_steps
from memup.networks import copy_nets, tmaze_nets
from memup.training import AlternatingSchedule, AlternatingTraining, MemoryTraining, WalkConfig
from memup.update import UpdateConfig

TMAZE_EXAMPLES = """examples:
  memup train tmaze-memory --length 1000 --rollout 20
  memup train tmaze-memory --length 10000 --rollout 20 --max-minutes 60 --seed 2
  memup train tmaze-memory --config configs/tmaze_lnr_1000.toml --resume
"""

COPY_EXAMPLES = """examples:
  memup train copy --length 120 --rollout 20
  memup train copy --length 1020 --rollout 20 --max-minutes 60
  memup train copy --config configs/copy_120.toml
"""


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """Flags every single-process training command shares."""
    add_config_flag(p)
    p.add_argument("--rollout", type=int, default=20, help="r: TBPTT window, steps per update")
    p.add_argument("--lanes", type=int, default=64, help="B: lanes walking episodes")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate")
    p.add_argument("--max-updates", type=int, default=200_000, help="stop after this many")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this much training wall time (0 = no limit)")
    p.add_argument("--eval-every", type=int, default=250, help="updates between evaluations")
    p.add_argument("--target-accuracy", type=float, default=0.99,
                   help="stop once evaluation accuracy reaches this ...")
    p.add_argument("--confirm", type=int, default=2, help="... on this many evaluations in a row")
    p.add_argument("--seed", type=int, default=1, help="seeds torch, data and evaluation sets")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where config, metrics.jsonl, checkpoint.pt and PNGs go "
                        "(default runs/<task>-<length>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """Registers ``memup train tmaze-memory`` and ``memup train copy``."""
    train = sub.add_parser("train", help="single-process training, no services",
                           description="Train MemUP in one process (no Redis, no roles).",
                           formatter_class=HelpFormatter,
                           epilog=TMAZE_EXAMPLES + "\n" + COPY_EXAMPLES)
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    tm = tasks.add_parser("tmaze-memory", help="T-Maze phase I: memory + predictor on "
                          "random-policy episodes", formatter_class=HelpFormatter,
                          description="Phase I of the paper's two-phase protocol: train the "
                          "memory and the reward predictor on uniform-random-policy T-Maze "
                          "episodes (targets: top-1 surprise + current step).",
                          epilog=TMAZE_EXAMPLES)
    tm.add_argument("--length", type=int, default=1000, help="L: minimal corridor length")
    tm.add_argument("--mode", default="LNR", choices=["L", "LN", "LR", "LNR"])
    tm.add_argument("--ema-decay", type=float, default=0.995, help="detector EMA per update")
    tm.add_argument("--chrono-horizon", type=int, default=-1,
                    help="chrono-initialise the LSTM gate biases for this horizon "
                         "(-1 = the episode length, 0 = PyTorch's default init)")
    tm.add_argument("--interaction", action=argparse.BooleanOptionalAction, default=True,
                    help="predictor head also sees m_t ⊙ q_k (--no-interaction: the paper's "
                         "concat-only head)")
    tm.add_argument("--eval-episodes", type=int, default=100, help="held-out episodes")
    add_common_flags(tm)
    tm.set_defaults(run=run_tmaze, lr=5e-3)
    cp = tasks.add_parser("copy", help="Copy-N with alternating memory/predictor phases",
                          formatter_class=HelpFormatter, epilog=COPY_EXAMPLES,
                          description="Copy-N (N = blanks + 20): recall 10 symbols after N-20 "
                          "blanks. Memory and predictor phases alternate; EMA nets evaluated.")
    cp.add_argument("--length", type=int, default=120, help="N: total sequence length")
    cp.add_argument("--scattered", action="store_true", help="Scattered Copy-N")
    cp.add_argument("--train-size", type=int, default=10_000, help="fixed training sequences")
    cp.add_argument("--eval-episodes", type=int, default=1000, help="held-out sequences")
    cp.add_argument("--warmup", type=int, default=1000, help="predictor-only updates first")
    cp.add_argument("--memory-updates", type=int, default=1000, help="memory phase per cycle")
    cp.add_argument("--predictor-updates", type=int, default=1000,
                    help="predictor phase per cycle")
    cp.add_argument("--ema-decay", type=float, default=0.97, help="EMA decay once per cycle")
    cp.add_argument("--memory-loss-scale", type=float, default=0.1)
    cp.add_argument("--top-k", type=int, default=10, help="memory-phase targets per state")
    cp.add_argument("--frequency", type=int, default=10, help="memory-phase prediction freq.")
    cp.add_argument("--chrono-horizon", type=int, default=0,
                    help="chrono-initialise the memory LSTM (-1 = length, 0 = off)")
    cp.add_argument("--interaction", action=argparse.BooleanOptionalAction, default=False,
                    help="predictor head also sees m_t ⊙ W c_k")
    add_common_flags(cp)
    cp.set_defaults(run=run_copy, lanes=128, lr=2e-4, eval_every=500)


def _setup(args: argparse.Namespace, name: str) -> tuple[torch.device, RunLog]:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    run_dir = args.run_dir or Path("runs") / f"{name}-s{args.seed}"
    if run_dir.exists() and (run_dir / "checkpoint.pt").exists() and not args.resume:
        raise SystemExit(f"{run_dir} already holds a run: add --resume to continue it, or "
                         "choose another --run-dir")
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k != "run"}
    config.update(device=str(device), torch_threads=torch.get_num_threads(),
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), pid=os.getpid())
    log = RunLog(run_dir, config)
    print(f"run {run_dir}: {json.dumps(config)}", file=sys.stderr)
    return device, log


def _finish(log: RunLog, record: dict) -> int:
    verdict = "solved" if record.get("solved") else "not solved"
    print(json.dumps({"run_dir": str(log.dir), **record}))
    print(f"{verdict} after {record.get('updates')} updates, "
          f"{record.get('wall_seconds', 0) / 60:.1f} min; curves in {log.dir}/accuracy.png. "
          f"Continue with --resume --run-dir {log.dir} and a larger --max-updates.",
          file=sys.stderr)
    return 0


def run_tmaze(args: argparse.Namespace) -> int:
    """T-Maze phase I until the held-out final-step accuracy target (or a limit)."""
    device, log = _setup(args, f"tmaze-{args.mode.lower()}-{args.length}")
    horizon = args.length if args.chrono_horizon < 0 else args.chrono_horizon
    nets = tmaze_nets(chrono_horizon=horizon or None, interaction=args.interaction)
    nets.memory.to(device)
    nets.predictor.to(device)
    source_rng = np.random.default_rng(args.seed)
    test = random_tmaze_episodes(args.eval_episodes, args.length, args.mode,
                                 np.random.default_rng(args.seed + 1_000_003))
    training = MemoryTraining(
        nets, lambda n: random_tmaze_episodes(n, args.length, args.mode, source_rng),
        source_rng, TargetRule(top_k=1, current=True),
        WalkConfig(args.lanes, args.rollout, 1), UpdateConfig(lr=args.lr),
        ema_decay=args.ema_decay, seed=args.seed, device=device)
    record = drive(
        training,
        lambda: evaluate(nets.memory, nets.predictor, test, final_steps(test), nets.kind,
                         device=device),
        log, StopRule(args.max_updates, args.max_minutes, args.target_accuracy, args.confirm),
        args.eval_every, args.resume, f"T-Maze-{args.mode}-{args.length} r={args.rollout}")
    return _finish(log, record)


def run_copy(args: argparse.Namespace) -> int:
    """Copy-N with alternating phases until the recall accuracy target (or a limit)."""
    blanks = args.length - 2 * RECALL_SYMBOLS
    if blanks < 1:
        raise SystemExit(f"--length must exceed {2 * RECALL_SYMBOLS} (10 symbols + 10 markers)")
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

    schedule = AlternatingSchedule(args.warmup, args.memory_updates, args.predictor_updates,
                                   args.ema_decay, args.memory_loss_scale, args.top_k,
                                   args.frequency)
    training = AlternatingTraining(nets, source, source_rng, WalkConfig(args.lanes, args.rollout,
                                   1), schedule, lr=args.lr, seed=args.seed, device=device)
    positions = last_steps(test, RECALL_SYMBOLS)

    def evaluate_both() -> dict[str, float]:
        ema = evaluate(training.detector.memory, training.detector.predictor, test, positions,
                       nets.kind, device=device)
        online = evaluate(nets.memory, nets.predictor, test, positions, nets.kind,
                          device=device)
        return {**ema, "online_accuracy": online["accuracy"], "online_loss": online["loss"]}

    log.log({"schedule": asdict(schedule)})
    record = drive(training, evaluate_both, log,
                   StopRule(args.max_updates, args.max_minutes, args.target_accuracy,
                            args.confirm),
                   args.eval_every, args.resume, f"{name} r={args.rollout}")
    return _finish(log, record)
