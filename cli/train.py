"""``memup train …`` flags: single-process MemUP training with no services (T-Maze, Copy,
Scattered Copy, Add)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path

from cli.options import (
    HelpFormatter,
    add_config_flag,
    add_renamed_flags,
    non_negative_int,
    positive_int,
)
from common.config import MemupConfig, RunConfig
from common.config_renames import TRAIN_COPY
from memup.config import AlternatingSchedule, UpdateConfig, WalkConfig

# Defaults come from the algorithm's dataclasses (memup/config.py) and, for what phase I of
# `memup up` shares with `memup train` (chrono init, interaction, target), from the cluster
# config's [memup] section, so that one value serves both commands.

TMAZE_EXAMPLES = """examples:
  memup train tmaze-memory --length 1000 --rollout 20
  memup train tmaze-memory --length 10000 --rollout 20 --max-minutes 60 --seed 2
  memup train tmaze-memory --config configs/tmaze_lnr_1000.toml --resume
  memup train tmaze-memory --config configs/tmaze_lnr_100000.toml --threads 1  # lazy, skipping
  memup train tmaze-memory --config configs/tmaze_lnr_100000.toml --skip 0  # walking lanes

Ctrl-C (or SIGTERM) saves the run at the update in progress; --resume continues it.
"""

COPY_EXAMPLES = """examples:
  memup train copy --config configs/copy_120.toml          # our joint schedule
  memup train copy --config configs/copy_1020.toml --max-minutes 60
  memup train copy --length 120 --schedule alternating --lr 2e-4 --no-interaction
  memup train scattered-copy --config configs/scattered_copy_1020.toml --max-minutes 20
"""

ADD_EXAMPLES = """examples:
  memup train add --config configs/add_1000.toml --max-minutes 20
  memup train add --length 5000 --rollout 100 --target-mse 0.0053
"""


def add_common_flags(p: argparse.ArgumentParser, stop_on_mse: bool = False) -> None:
    """Flags every single-process training command shares (``stop_on_mse``: the run stops
    on a held-out MSE at or below ``--target-mse`` instead of an accuracy)."""
    add_config_flag(p)
    p.add_argument("--rollout", type=positive_int, default=WalkConfig.rollout,
                   help="r: TBPTT window, steps per update")
    p.add_argument("--lanes", type=positive_int, default=WalkConfig.lanes,
                   help="B: lanes walking episodes")
    p.add_argument("--lr", type=float, default=UpdateConfig.lr, help="Adam learning rate")
    p.add_argument("--max-updates", type=positive_int, default=200_000, help="stop after this many")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this much training wall time (0 = no limit)")
    p.add_argument("--eval-every", type=positive_int, default=250,
                   help="updates between evaluations")
    if stop_on_mse:
        p.add_argument("--target-mse", type=float, default=0.0053,
                       help="stop once the held-out MSE is at or below this (the paper's "
                            "Add-5000: 0.0053) ...")
    else:
        p.add_argument("--target-accuracy", type=float, default=MemupConfig.target_accuracy,
                       help="stop once evaluation accuracy reaches this ...")
    p.add_argument("--confirm", type=positive_int, default=2,
                   help="... on this many evaluations in a row")
    p.add_argument("--seed", type=int, default=1, help="seeds torch, data and evaluation sets")
    p.add_argument("--device", default=RunConfig.device,
                   help="auto (cuda when present), cpu, cuda:N")
    p.add_argument("--threads", type=non_negative_int, default=0,
                   help="torch CPU threads (0 = torch default)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where config, metrics.jsonl, checkpoint.pt and PNGs go "
                        "(default runs/<task>-<length>-s<seed>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <run-dir>/checkpoint.pt (written at every evaluation "
                        "and on Ctrl-C / SIGTERM)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write the metrics.jsonl scalars as TensorBoard events in "
                        "<run-dir>/tensorboard/ (pip install -e \".[tensorboard]\")")


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """Registers ``memup train tmaze-memory``, ``copy``, ``scattered-copy`` and ``add``."""
    train = sub.add_parser("train", help="single-process training, no services",
                           description="Train MemUP in one process (no Redis, no roles).",
                           formatter_class=HelpFormatter,
                           epilog=TMAZE_EXAMPLES + "\n" + COPY_EXAMPLES + "\n" + ADD_EXAMPLES)
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    tm = tasks.add_parser("tmaze-memory", help="T-Maze phase I: memory + predictor on "
                          "random-policy episodes", formatter_class=HelpFormatter,
                          description="Phase I of the paper's two-phase protocol: train the "
                          "memory and the reward predictor on uniform-random-policy T-Maze "
                          "episodes (targets: top-1 surprise + current step).",
                          epilog=TMAZE_EXAMPLES)
    tm.add_argument("--length", type=positive_int, default=1000, help="L: minimal corridor length")
    tm.add_argument("--mode", default="LNR", choices=["L", "LN", "LR", "LNR"])
    tm.add_argument("--ema-decay", type=float, default=UpdateConfig.ema_decay,
                    help="detector EMA per update")
    tm.add_argument("--chrono-horizon", type=int, default=MemupConfig.chrono,
                    help="chrono-initialise the LSTM gate biases for this horizon "
                         "(-1 = the episode length, 0 = PyTorch's default init)")
    tm.add_argument("--interaction", action=argparse.BooleanOptionalAction,
                    default=MemupConfig.interaction,
                    help="predictor head also sees m_t ⊙ q_k (--no-interaction: the paper's "
                         "concat-only head)")
    tm.add_argument("--eval-episodes", type=positive_int, default=100, help="held-out episodes")
    tm.add_argument("--lazy", action=argparse.BooleanOptionalAction, default=False,
                    help="episodes generated block by block on demand and marked by a "
                         "streamed detector pass: memory constant in --length (T >= 100,000)")
    tm.add_argument("--stagger", action=argparse.BooleanOptionalAction, default=False,
                    help="lanes start their first episodes at staggered offsets (state by a "
                         "no-gradient pass), so clue and junction windows spread over updates")
    tm.add_argument("--skip", type=non_negative_int, default=WalkConfig.skip,
                    help="after each rollout a lane passes 0..2*SKIP steps (a multiple of r) "
                         "by a no-gradient pass; each episode's first and last rollouts are "
                         "always trained, so they come (SKIP+r)/r times as often; may "
                         "change on --resume")
    tm.add_argument("--reuse", type=positive_int, default=WalkConfig.reuse,
                    help="lanes each marked episode is walked by (one detector pass feeds "
                         "REUSE walks); may change on --resume")
    add_common_flags(tm)
    tm.set_defaults(run=_lazy("train_runs", "run_tmaze"))
    cp = tasks.add_parser("copy", help="Copy-N: recall 10 symbols after N-20 blanks",
                          formatter_class=HelpFormatter, epilog=COPY_EXAMPLES,
                          description="Copy-N (N = blanks + 20): recall 10 symbols after N-20 "
                          "blanks. EMA nets evaluated on held-out sequences.")
    cp.add_argument("--scattered", action="store_true",
                    help="Scattered Copy-N (same as ``memup train scattered-copy``)")
    _add_copy_flags(cp)
    sc = tasks.add_parser("scattered-copy", help="Scattered Copy-N: the 10 symbols at random "
                          "positions", formatter_class=HelpFormatter, epilog=COPY_EXAMPLES,
                          description="Scattered Copy-N: the 10 data symbols sit at random "
                          "distinct positions among the first N-10 steps (blanks elsewhere); "
                          "the last 10 steps recall them in order of appearance. Same "
                          "protocols and flags as ``memup train copy``.")
    _add_copy_flags(sc)
    sc.set_defaults(scattered=True)
    ad = tasks.add_parser("add", help="Add-N: regress the sum of the two marked values",
                          formatter_class=HelpFormatter, epilog=ADD_EXAMPLES,
                          description="The adding problem: each step reads (value, mark, "
                          "is_last); the last step's outcome is the sum of the two marked "
                          "values (one in each half). Memory + regression predictor on top-K "
                          "surprise + current-step targets; EMA nets evaluated by their MSE "
                          "at the last step of held-out sequences.")
    ad.add_argument("--length", type=positive_int, default=1000, help="T: sequence length")
    ad.add_argument("--top-k", type=positive_int, default=1, help="future targets per state")
    ad.add_argument("--frequency", type=positive_int, default=5, help="prediction frequency")
    ad.add_argument("--ema-decay", type=float, default=UpdateConfig.ema_decay,
                    help="detector EMA per update")
    ad.add_argument("--chrono-horizon", type=int, default=MemupConfig.chrono,
                    help="chrono-initialise the memory LSTM (-1 = length, 0 = off)")
    ad.add_argument("--interaction", action=argparse.BooleanOptionalAction,
                    default=MemupConfig.interaction,
                    help="predictor head also sees m_t ⊙ q_k")
    ad.add_argument("--eval-episodes", type=positive_int, default=1000,
                    help="held-out sequences")
    add_common_flags(ad, stop_on_mse=True)
    # Add's own rate (configs/add_1000.toml)
    ad.set_defaults(run=_lazy("train_sequence", "run_sequence"), lr=1e-3)


def _add_copy_flags(cp: argparse.ArgumentParser) -> None:
    """The flags of ``memup train copy`` and ``memup train scattered-copy``."""
    cp.add_argument("--length", type=positive_int, default=120, help="N: total sequence length")
    cp.add_argument("--train-size", type=positive_int, default=10_000,
                    help="fixed training sequences")
    cp.add_argument("--eval-episodes", type=positive_int, default=1000, help="held-out sequences")
    cp.add_argument("--schedule", choices=["alternating", "joint"], default="alternating",
                    help="alternating: the authors' memory/predictor phases; joint: one "
                         "optimiser on top-K + current-step targets every update")
    cp.add_argument("--ema-per-update", type=float, default=UpdateConfig.ema_decay,
                    help="joint schedule: detector EMA decay per update")
    cp.add_argument("--warmup", type=non_negative_int, default=AlternatingSchedule.warmup,
                    help="predictor-only updates first")
    cp.add_argument("--memory-updates", type=positive_int,
                    default=AlternatingSchedule.memory_updates,
                    help="memory phase per cycle")
    cp.add_argument("--predictor-updates", type=positive_int,
                    default=AlternatingSchedule.predictor_updates,
                    help="predictor phase per cycle")
    cp.add_argument("--ema-per-cycle", type=float, default=AlternatingSchedule.ema_decay,
                    help="alternating schedule: EMA decay once per cycle")
    cp.add_argument("--memory-loss-scale", type=float,
                    default=AlternatingSchedule.memory_loss_scale)
    cp.add_argument("--top-k", type=positive_int, default=AlternatingSchedule.top_k,
                    help="memory-phase targets per state")
    cp.add_argument("--frequency", type=positive_int, default=AlternatingSchedule.memory_frequency,
                    help="prediction frequency (memory phase, or every update when joint)")
    cp.add_argument("--chrono-horizon", type=int, default=0,
                    help="chrono-initialise the memory LSTM (-1 = length, 0 = off)")
    cp.add_argument("--interaction", action=argparse.BooleanOptionalAction, default=False,
                    help="predictor head also sees m_t ⊙ W c_k")
    cp.add_argument("--stagger", action=argparse.BooleanOptionalAction, default=False,
                    help="joint schedule: lanes start their first sequences at staggered "
                         "offsets (states by a no-gradient pass), so the data windows spread "
                         "over updates instead of coming all at once")
    add_common_flags(cp)
    add_renamed_flags(cp, TRAIN_COPY)
    cp.set_defaults(run=_lazy("train_sequence", "run_sequence"), lanes=128,
                    lr=AlternatingSchedule.lr, eval_every=500)


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports ``cli.<module>`` on use, so ``--help`` does not load torch."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"cli.{module}"), name)(args)

    return run
