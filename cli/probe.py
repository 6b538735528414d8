"""``memup probe``: what a Two-Colors run's memory remembers, measured on fresh episodes.

Plays fresh episodes with the uniform-random data policy (in phase I's data env, whose
random episodes last to the timeout), runs the run's EMA memory and predictor over them and
reports two linear probes (memup/probe.py):

* the pillar colour read from the memory state ``--after`` steps after the pillar vanished
  (logistic regression fitted on half of the episodes, scored on the other half; several
  comma-separated ``--after`` values probe one collection of episodes at each), with a
  control of where it comes from: the held-out episodes replayed with the pillar steps of
  an episode of the other colour (does the answer follow the pillar, or the pickups after?);
* the predictor's sign accuracy on pickup rewards, against a memory-less predictor fitted
  on the same target-frame features (it must sit near 50 %: the colour is a coin flip),
  and as MemUP trains it: a rollout's last state asked about the next rollout's pickups.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.options import HelpFormatter

EXAMPLES = """examples:
  memup probe runs/two-colors                        # 120 fresh episodes, 500 steps after
  memup probe runs/two-colors --episodes 200 --after 500 --workers 2 --json
  memup probe runs/short-phase-one --length 1050      # longer episodes than it trained on
  memup probe runs/two-colors --after 14,500 --length 560   # m_59 and m_545, same episodes
"""

def add_probe_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="linear probes of a Two-Colors run's memory",
                       description=__doc__, formatter_class=HelpFormatter, epilog=EXAMPLES)
    p.add_argument("run_dir", type=Path, help="the run's directory (runs/<run.name>)")
    p.add_argument("--episodes", type=int, default=120, help="fresh random-policy episodes")
    p.add_argument("--after", type=step_list, default=[500],
                   help="probe the memory this many steps after the pillar vanished "
                        "(comma-separated for several)")
    p.add_argument("--length", type=int, default=0,
                   help="steps of the fresh episodes (0: the run's task.length); a memory "
                        "trained on short episodes can be probed on longer ones")
    p.add_argument("--workers", type=int, default=2, help="processes playing episodes")
    p.add_argument("--seed", type=int, default=777, help="first env seed (then +1 each)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_probe)


def step_list(text: str) -> list[int]:
    """``"14,500"`` → ``[14, 500]``: non-negative step counts for ``--after``."""
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give whole numbers, e.g. 500 or 14,500") from exc
    if any(n < 0 for n in steps):
        raise argparse.ArgumentTypeError(f"{text!r}: steps after the pillar cannot be negative")
    return steps


def run_probe(args: argparse.Namespace) -> int:
    """Loads the run and hands it to its task's probe (:meth:`tasks.base.Task.memory_probe`)."""
    from cli.run_dir import RunDirError, load_run
    from common.config import ConfigError
    from tasks.registry import task_class

    try:
        config, state = load_run(args.run_dir)
    except RunDirError as exc:
        print(f"memup probe: {exc}", file=sys.stderr)
        return 2
    try:
        task = task_class(config.task.env)(config)
    except ConfigError as exc:
        print(f"memup probe: {args.run_dir}: {exc}", file=sys.stderr)
        return 2
    probe = task.memory_probe()
    if probe is None:
        print(f"memup probe: task {config.task.env!r} (of {args.run_dir}) defines no memory "
              "probe; probes are a task's own (tasks/<task>/, Task.memory_probe)",
              file=sys.stderr)
        return 2
    return probe(args, config, state)
