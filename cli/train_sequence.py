"""``memup train copy | scattered-copy | add``: one runner for the supervised sequence tasks.

What differs between them (generator, fixed training set or fresh data, outcome kind,
metric, networks, context targets) comes from their entry in
:data:`tasks.sequence.SEQUENCE_TASKS`; the protocols (joint memory + predictor updates, or
Copy's alternating phases) come from the flags.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np

from cli.driver import StopRule, drive
from cli.options import fail
from cli.train_runs import finish_run, setup_run
from memup.config import AlternatingSchedule, UpdateConfig, WalkConfig
from memup.detector import TargetRule
from memup.episode import Episode
from memup.evaluate import evaluate, last_steps
from memup.sampler import EpisodeSource
from memup.training import AlternatingTraining, MemoryTraining
from tasks.sequence import SEQUENCE_TASKS, SequenceTask

# Settings a resumed run must share with its checkpoint (they shape the nets, the data or
# the walk); a task's run checks those of them its flags have.
FIXED = ("length", "scattered", "schedule", "lanes", "rollout", "train_size", "warmup",
         "memory_updates", "predictor_updates", "top_k", "frequency", "chrono_horizon",
         "interaction", "stagger")
# Fixed settings added later, with the value every checkpoint written before them had.
ADDED = {"stagger": False}
# The tasks' seeds: a fixed training set, the held-out set, the draws from the training set.
TEST_SEED, DRAW_SEED = 1_000_003, 17


def sequence_task(args: argparse.Namespace) -> SequenceTask:
    """The registry entry ``args`` train: their subcommand's, where ``copy --scattered``
    (the flag predates the subcommand) is ``scattered-copy``."""
    return SEQUENCE_TASKS["scattered-copy" if getattr(args, "scattered", False) else args.task]


def run_sequence(args: argparse.Namespace) -> int:
    """A sequence task until its held-out metric reaches the target (or a limit)."""
    task = sequence_task(args)
    if args.length < task.min_length:
        fail(f"--length {args.length}: {task.title}-N needs N >= {task.min_length} "
             f"({task.min_length_reason})")
    if not 1 <= args.frequency <= args.rollout:
        fail(f"--frequency {args.frequency} must be between 1 and --rollout {args.rollout}")
    alternating = getattr(args, "schedule", "joint") == "alternating"
    if alternating and args.stagger:
        fail("--stagger applies to --schedule joint")
    name = f"{task.title}-{args.length}"
    device, log = setup_run(args, name)
    horizon = args.length if args.chrono_horizon < 0 else args.chrono_horizon
    nets = task.networks(chrono_horizon=horizon or None, interaction=args.interaction)
    nets.memory.to(device)
    nets.predictor.to(device)
    test = task.episodes(args.eval_episodes, args.length,
                         np.random.default_rng(args.seed + TEST_SEED))
    source, source_rng = _source(task, args.length, args.seed,
                                 args.train_size if task.fixed_training_set else 0)
    walk = WalkConfig(args.lanes, args.rollout, args.frequency)
    if alternating:
        schedule = AlternatingSchedule(args.warmup, args.memory_updates, args.predictor_updates,
                                       args.ema_per_cycle, args.memory_loss_scale, args.top_k,
                                       args.frequency, args.lr)
        training: MemoryTraining | AlternatingTraining = AlternatingTraining(
            nets, source, source_rng, WalkConfig(args.lanes, args.rollout, 1), schedule,
            seed=args.seed, device=device)
        log.log({"schedule": asdict(schedule)})
    else:
        training = MemoryTraining(
            nets, source, source_rng,
            TargetRule(top_k=args.top_k, current=True, context=task.context), walk,
            UpdateConfig(lr=args.lr, ema_decay=_ema_per_update(args),
                         live_context=task.context),
            seed=args.seed, device=device, stagger=getattr(args, "stagger", False))
    positions = last_steps(test, task.scored_steps)

    def evaluate_both() -> dict[str, float]:
        ema = evaluate(training.detector.memory, training.detector.predictor, test, positions,
                       nets.kind, device=device)
        online = evaluate(nets.memory, nets.predictor, test, positions, nets.kind,
                          device=device)
        if task.metric == "mse":
            # Squared error is the regression loss, so the loss at the scored steps is the MSE.
            return {"mse": ema["loss"], "online_mse": online["loss"]}
        return {**ema, "online_accuracy": online["accuracy"], "online_loss": online["loss"]}

    fixed = {k: getattr(args, k) for k in FIXED if k in vars(args)}
    record = drive(training, evaluate_both, log,
                   StopRule(args.max_updates, args.max_minutes,
                            getattr(args, f"target_{task.metric}"), args.confirm,
                            metric=task.metric, minimise=task.minimise),
                   args.eval_every, args.resume, f"{name} r={args.rollout}", fixed,
                   {k: v for k, v in ADDED.items() if k in fixed})
    return finish_run(log, record, task.metric)


def _source(task: SequenceTask, length: int, seed: int, train_size: int,
            ) -> tuple[EpisodeSource, np.random.Generator]:
    """Where a run draws its sequences, and the generator it draws with: ``train_size``
    sequences generated once (0: fresh sequences every draw)."""
    if not train_size:
        rng = np.random.default_rng(seed)
        return (lambda n: task.episodes(n, length, rng)), rng
    train = task.episodes(train_size, length, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + DRAW_SEED)

    def draw(n: int) -> list[Episode]:
        # Fresh Episode records: marks are per walk, the arrays are shared read-only.
        picks = rng.integers(len(train), size=n)
        return [Episode(train[i].inputs, train[i].queries, train[i].labels) for i in picks]

    return draw, rng


def _ema_per_update(args: argparse.Namespace) -> float:
    """The detector's EMA decay per update: Copy's ``--ema-per-update`` (it also has
    ``--ema-per-cycle``), Add's ``--ema-decay``."""
    return args.ema_per_update if "ema_per_update" in vars(args) else args.ema_decay
