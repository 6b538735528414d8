"""``memup bench faults``: real local clusters with faults injected, and what each cost.

Each scenario (F1 to F8, see docs/operations.md "Faults: what each costs") starts its own
``memup up`` on T-Maze-LNR-20 with the episode ledger on (``MEMUP_LEDGER``), injects its
fault at the right phase, lets the run end on its env-step budget, and reports: whether the
run finished, episodes produced / lost / trained twice / rolled back (from the ledger), the
worst time from a fault to the learner's next training, peak Redis used_memory and the
peak RSS of any role process. A scenario takes one to three minutes; they run one at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cli.options import HelpFormatter

EXAMPLES = """examples:
  memup bench faults                          # F1 ... F8, one after another (~15 min)
  memup bench faults --only F4,F7             # the learner kills and the forged request
  memup bench faults --only F3a --json        # one JSON object: {"results": [record, ...]}
  memup bench faults --keep runs/faults       # keep the runs (logs, ledger, record.json)
  memup bench faults --from faults.json --markdown   # the table of a saved --json run
"""


def add_faults_parser(kinds: argparse._SubParsersAction) -> None:
    """Registers ``memup bench faults`` under ``memup bench``."""
    p = kinds.add_parser(
        "faults", formatter_class=HelpFormatter, epilog=EXAMPLES,
        help="fault injection on real local clusters: loss, duplicates, recovery, memory",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""))
    p.add_argument("--only", default="",
                   help="comma-separated scenario ids, e.g. F1,F4 (empty: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds the injection times")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="run the clusters under DIR and keep them (none: a temp dir, removed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--from", dest="from_json", type=Path, default=None, metavar="JSON",
                   help="run nothing: print the table of a saved --json output")
    p.set_defaults(run=run_faults_bench)


COLUMNS = (("fault", 5), ("what", 40), ("finished", 8), ("produced", 8), ("lost", 11),
           ("twice", 5), ("rolled back", 11), ("recover s", 9), ("fresh s", 7), ("Redis MB", 8),
           ("RSS MB", 7), ("restarts", 22), ("checks", 6))


def row(rec: dict[str, Any]) -> list[str]:
    """One table row of a scenario record."""
    restarts = ", ".join(f"{k} {v}" for k, v in sorted(rec.get("restarts", {}).items())) or "-"
    ttr, fresh = rec.get("recover_s"), rec.get("fresh_s")
    return [rec["fault"], rec["what"], "yes" if rec["finished"] else "NO",
            f"{rec['produced']:,}", f"{rec['lost']} (<={rec['lost_max']})",
            str(rec["trained_twice"]), str(rec["rolled_back"]),
            "never" if ttr is None else f"{ttr:.1f}",
            "never" if fresh is None else f"{fresh:.1f}", f"{rec['peak_redis_mb']:.0f}",
            f"{rec['peak_rss_max_mb']:.0f}", restarts, "pass" if rec["passed"] else "FAIL"]


def table(records: list[dict[str, Any]], markdown: bool = False) -> str:
    """The records as a plain-text (or Markdown) table."""
    if markdown:
        lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |",
                 "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row(rec)) + " |" for rec in records]
        return "\n".join(lines)
    lines = ["  ".join(f"{name:<{w}}" for name, w in COLUMNS)]
    for rec in records:
        lines.append("  ".join(f"{cell:<{w}}" for cell, (_, w) in zip(row(rec), COLUMNS)))
    return "\n".join(lines)


def run_faults_bench(args: argparse.Namespace) -> int:
    """Runs the chosen scenarios one at a time; exit 1 when any check failed."""
    if args.from_json is not None:
        records = json.loads(args.from_json.read_text())["results"]
        print(table(records, args.markdown))
        return 0 if all(r["passed"] for r in records) else 1
    from cli.faults.record import failed, run_scenario, stamp
    from cli.faults.scenarios import SCENARIOS

    wanted = [x.strip() for x in args.only.split(",") if x.strip()] or list(SCENARIOS)
    unknown = [x for x in wanted if x not in SCENARIOS]
    if unknown:
        print(f"memup bench faults: unknown scenario {unknown}; choose from "
              f"{', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    temp = None
    if args.keep is None:
        temp = tempfile.TemporaryDirectory(prefix="memup-faults-")
        base = Path(temp.name)
    else:
        base = args.keep.resolve() / stamp()
    records = []
    try:
        for i, sid in enumerate(wanted, 1):
            scenario = SCENARIOS[sid]
            print(f"[{i}/{len(wanted)}] {sid}: {scenario.fault} ...", file=sys.stderr,
                  flush=True)
            rec = run_scenario(scenario, base, seed=args.seed)
            records.append(rec)
            verdict = "pass" if rec["passed"] else "FAIL\n" + failed(rec)
            print(f"[{i}/{len(wanted)}] {sid}: {rec['wall_s']:.0f}s, lost {rec['lost']}, "
                  f"trained twice {rec['trained_twice']}, recover {rec['recover_s']}s: "
                  f"{verdict}", file=sys.stderr, flush=True)
    finally:
        if temp is not None:
            temp.cleanup()
    if args.json:
        print(json.dumps({"results": records}))
    else:
        print(table(records, args.markdown))
    return 0 if all(r["passed"] for r in records) else 1
