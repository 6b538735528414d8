"""``memup plot``: learning curves of several runs in one PNG (for reports)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import HelpFormatter
from common.runlog import read_records

EXAMPLES = """examples:
  memup plot runs/tmaze-lnr-1000-s1 runs/tmaze-lnr-1000-s2 --out docs/img/tmaze.png
  memup plot runs/copy-120-s1 --y eval_online_accuracy --x wall_minutes --out copy.png
  memup plot runs/two-colors runs/two-colors-lstm --phase 2 --x env_steps --y mean_return \
      --target 2.1 --target-label "random policy" --out docs/img/two_colors_phase2.png
"""


def add_plot_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``memup plot``."""
    p = sub.add_parser("plot", help="learning curves of runs as one PNG",
                       formatter_class=HelpFormatter, epilog=EXAMPLES,
                       description="Plot a metric of several runs' metrics.jsonl against "
                       "updates or wall time.")
    p.add_argument("runs", nargs="+", type=Path, help="run directories")
    p.add_argument("--x", default="updates",
                   choices=["updates", "wall_minutes", "update", "ppo_update", "env_steps"],
                   help="x axis (update, ppo_update, env_steps: `memup up` runs)")
    p.add_argument("--y", default="eval_accuracy", help="metric field to plot")
    p.add_argument("--phase", type=int, default=None, help="only records of this phase")
    p.add_argument("--target", type=float, default=None, help="draw a horizontal line")
    p.add_argument("--target-label", default=None, help="the line's legend (default: target)")
    p.add_argument("--title", default="learning curves")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from common.curves import plot_curves  # matplotlib loads only when plotting

    series = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").exists():
            raise SystemExit(f"{run} has no metrics.jsonl: is it a run directory?")
        records = [r for r in read_records(run)
                   if args.phase is None or r.get("phase") == args.phase]
        for r in records:
            if "wall_seconds" in r:
                r["wall_minutes"] = r["wall_seconds"] / 60
        series[run.name] = records
    out = plot_curves(series, args.x, args.y, args.out, args.title, args.target,
                      target_label=args.target_label)
    print(out)
    return 0

