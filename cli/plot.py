"""``memup plot``: learning curves of several runs in one PNG (for reports)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import HelpFormatter
from common.runlog import read_records

EXAMPLES = """examples:
  memup plot runs/tmaze-lnr-1000-s1 runs/tmaze-lnr-1000-s2 --out docs/img/tmaze.png
  memup plot runs/copy-120-s1 --y eval_online_accuracy --x wall_minutes --out copy.png
"""


def add_plot_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``memup plot``."""
    p = sub.add_parser("plot", help="learning curves of runs as one PNG",
                       formatter_class=HelpFormatter, epilog=EXAMPLES,
                       description="Plot a metric of several runs' metrics.jsonl against "
                       "updates or wall time.")
    p.add_argument("runs", nargs="+", type=Path, help="run directories")
    p.add_argument("--x", default="updates", choices=["updates", "wall_minutes"])
    p.add_argument("--y", default="eval_accuracy", help="metric field to plot")
    p.add_argument("--target", type=float, default=None, help="draw a target line")
    p.add_argument("--title", default="learning curves")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from common.curves import plot_curves  # matplotlib loads only when plotting

    series = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").exists():
            raise SystemExit(f"{run} has no metrics.jsonl: is it a run directory?")
        records = [r for r in read_records(run) if "updates" in r]
        for r in records:
            r["wall_minutes"] = r.get("wall_seconds", 0) / 60
        series[run.name] = records
    out = plot_curves(series, args.x, args.y, args.out, args.title, args.target)
    print(out)
    return 0

