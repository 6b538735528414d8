"""``memup bench …``: measurements printed as a table, or as one JSON object with ``--json``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from cli.bench_env import add_env_bench_parser
from cli.bench_faults import add_faults_parser
from cli.bench_wire import add_wire_parser
from cli.options import HelpFormatter

MEMORY_EXAMPLES = """examples:
  memup bench memory                                   # T = 1,000 / 10,000 / 100,000
  memup bench memory --lengths 1000,10000 --json
  memup bench memory --methods memup --lengths 1000000
  memup bench memory --lengths 1000,10000,100000,1000000   # BPTT at 1 M extrapolated
"""

PIPELINE_EXAMPLES = """examples:
  memup bench pipeline                          # T-Maze-LNR-100, 2 actors x 16 envs, 60 s
  memup bench pipeline --length 1000 --seconds 120 --json
  memup bench pipeline --env two-colors --actors 1 --envs 8 --seconds 120
  memup bench pipeline --env gym:popgym:popgym-RepeatPreviousEasy-v0 --seconds 30
"""

MIB = 1024 * 1024


def _pipeline(args: argparse.Namespace) -> int:
    from cli.bench_pipeline import run_pipeline_bench

    return run_pipeline_bench(args)


def add_bench_parsers(sub: argparse._SubParsersAction) -> None:
    """Registers ``memup bench memory``, ``pipeline``, ``env``, ``wire`` and ``faults``."""
    bench = sub.add_parser("bench", help="benchmarks (tables, or --json)",
                           formatter_class=HelpFormatter, epilog=MEMORY_EXAMPLES,
                           description="Benchmarks. Each prints a table, or JSON with --json.")
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    mem = kinds.add_parser(
        "memory", formatter_class=HelpFormatter, epilog=MEMORY_EXAMPLES,
        help="bytes stored for backward, peak RSS, s/update: MemUP vs full BPTT",
        description="Per training update on one T-Maze episode of length T: the bytes autograd "
        "stores for backward, the process's peak RSS and seconds per update, for MemUP "
        "(r = 20, targets top-1 + current step) and for full BPTT of the same LSTM and "
        "predictor. Every case runs in a child process; one that runs out of memory is "
        "reported with status 'oom'.")
    mem.add_argument("--lengths", default="1000,10000,100000", help="comma-separated T values")
    mem.add_argument("--methods", default="memup,bptt", help="memup, bptt or both")
    mem.add_argument("--rollout", type=int, default=20, help="MemUP's r")
    mem.add_argument("--updates", type=int, default=3, help="updates measured per case")
    mem.add_argument("--threads", type=int, default=0, help="torch threads per case (0 = default)")
    mem.add_argument("--timeout", type=float, default=1800, help="seconds per case")
    mem.add_argument("--bptt-max-length", type=int, default=100_000,
                     help="longer BPTT cases are not run but extrapolated linearly from the "
                          "two longest measured ones (status 'extrapolated')")
    mem.add_argument("--json", action="store_true", help="print one JSON object")
    mem.set_defaults(run=run_memory_bench)
    pipe = kinds.add_parser(
        "pipeline", formatter_class=HelpFormatter, epilog=PIPELINE_EXAMPLES,
        help="end-to-end env steps/s through the cluster vs raw env stepping; per-hop latency",
        description="Raw env steps/s of the same envs in one process, then a real local "
        "cluster (embedded Redis, actors, scorer, learner in phase I) measured after warm-up: "
        "steps published, scored into the replay window and trained on per second, and "
        "p50/p99 latency of each hop from the roles' Prometheus histograms.")
    pipe.add_argument("--env", default="tmaze",
                      help="the task (task.env): tmaze, two-colors, gym:<id>, "
                           "<module>:<callable>; it starts from the task's benchmark config "
                           "(two-colors: configs/up_two_colors.toml)")
    pipe.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="override one config value, e.g. --set "
                                                "task.length=1000")
    pipe.add_argument("--length", type=int, default=None,
                      help="task.length: T-Maze corridor length (default 100); Two-Colors: "
                           "episode limit in agent steps (default: the config's 1050)")
    pipe.add_argument("--actors", type=int, default=2, help="actor processes")
    pipe.add_argument("--envs", type=int, default=16, help="envs per actor")
    pipe.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    pipe.add_argument("--raw-seconds", type=float, default=10.0, help="raw stepping time")
    pipe.add_argument("--warmup-updates", type=int, default=50,
                      help="learner updates before the window opens")
    pipe.add_argument("--warmup-seconds", type=float, default=300.0,
                      help="give up when the learner has not made its warm-up updates by then")
    pipe.add_argument("--replay-ratio", type=float, default=0.01,
                      help="trained steps per env step before actors wait (low: actors run "
                           "as fast as the pipeline takes their steps)")
    pipe.add_argument("--json", action="store_true", help="print one JSON object")
    pipe.set_defaults(run=_pipeline)
    add_env_bench_parser(kinds)
    add_wire_parser(kinds)
    add_faults_parser(kinds)


def _case(method: str, length: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "cli.bench_memory", "--method", method, "--length",
           str(length), "--rollout", str(args.rollout), "--updates", str(args.updates),
           "--threads", str(args.threads)]
    base = {"method": method, "length": length, "saved_bytes": 0, "peak_rss_bytes": 0,
            "seconds_per_update": 0.0}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {**base, "status": "error", "error": f"timed out after {args.timeout} s"}
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    text = done.stderr[-2000:]
    oom = done.returncode in (-9, 137) or "out of memory" in text.lower() \
        or "MemoryError" in text
    return {**base, "status": "oom" if oom else "error",
            "error": text.strip().splitlines()[-1] if text.strip() else f"exit {done.returncode}"}


def run_memory_bench(args: argparse.Namespace) -> int:
    """Runs every (method, length) case in a child process and reports them."""
    lengths = [int(x) for x in args.lengths.split(",") if x]
    methods = [m for m in args.methods.split(",") if m]
    bad = set(methods) - {"memup", "bptt"}
    if bad:
        raise SystemExit(f"--methods: unknown {sorted(bad)}; use memup and/or bptt")
    results = []
    skipped = sorted({t for t in lengths if "bptt" in methods and t > args.bptt_max_length})
    for length in lengths:
        for method in methods:
            if method == "bptt" and length in skipped:
                continue
            if not args.json:
                print(f"measuring {method} T={length} ...", file=sys.stderr, flush=True)
            results.append(_case(method, length, args))
    if skipped:
        from cli.bench_memory import extrapolate_bptt

        results += extrapolate_bptt(results, skipped)
    if args.json:
        print(json.dumps({"results": results}))
        return 0
    print(f"{'method':<7} {'T':>9} {'saved MiB':>10} {'peak RSS MiB':>13} {'s/update':>9} "
          f"{'status':>12}")
    for r in results:
        print(f"{r['method']:<7} {r['length']:>9} {r['saved_bytes'] / MIB:>10.2f} "
              f"{r['peak_rss_bytes'] / MIB:>13.0f} {r['seconds_per_update']:>9.4f} "
              f"{r['status']:>12}")
    by = {(r["method"], r["length"]): r for r in results}
    for length in lengths:
        m, b = by.get(("memup", length)), by.get(("bptt", length))
        if m and b and m["saved_bytes"] and b["saved_bytes"]:
            note = " (BPTT extrapolated)" if b["status"] == "extrapolated" else ""
            print(f"T={length}: BPTT stores {b['saved_bytes'] / m['saved_bytes']:.0f}x "
                  f"MemUP's bytes per update{note}")
    return 0
