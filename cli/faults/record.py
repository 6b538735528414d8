"""Runs one scenario and turns what was seen into its record: figures, bounds, checks."""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from cli.faults.cluster import Cluster
from cli.faults.recovery import (
    fresh_s,
    grace_s,
    recover_s,
    rollback_window_s,
    rolled_back_only,
    worst,
)
from cli.faults.scenarios import COMMON, Scenario
from common.ledger import figures, read_events


def run_scenario(scenario: Scenario, base: Path, seed: int = 0) -> dict[str, Any]:
    """Runs ``scenario`` in ``base/<id>`` and returns its record (also written there as
    ``record.json``). Never raises for a failed run: the record says what failed."""
    folder = Path(base) / scenario.id.lower()
    overrides = [*COMMON, f"ppo.max_env_steps={scenario.budget}", *scenario.overrides]
    cluster = Cluster(folder, scenario.id.lower(), overrides, scenario.max_minutes).start()
    extra: dict[str, Any] = {}
    error = None
    try:
        extra = scenario.inject(cluster, random.Random(seed)) or {}
    except Exception as exc:  # recorded: the run is still ended and measured
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    seen = cluster.finish(timeout_s=scenario.max_minutes * 60 + 60)
    events = read_events(cluster.ledger)
    fig = figures(cluster.ledger, grace_s=grace_s(events)).as_dict()
    times = [t for t, _ in cluster.faults]
    extra["stray_tmp"] = len(list((cluster.run_path / "checkpoints").glob(".learner.pt.*.tmp")))
    record: dict[str, Any] = {
        "fault": scenario.id, "what": scenario.fault, "seed": seed,
        "run_path": str(cluster.run_path), "overrides": overrides,
        "injection_error": error,
        "faults": [{"at_s": round(t - cluster.started, 1), "what": w} for t, w in cluster.faults],
        "fault_times": times,
        "finished": (seen["exit_code"] == 0 and seen["ended"] == "finished"
                     and seen["last_phase"] == 2),
        **seen, **fig,
        "recover_s": worst([recover_s(events, t) for t in times]),
        "fresh_s": worst([fresh_s(events, t) for t in times]),
        # episodes whose every PPO training a restart undid, and the longest such stretch
        "rolled_back_episodes": rolled_back_only(events),
        "rollback_window_s": rollback_window_s(events),
        "extra": extra,
    }
    record["peak_rss_max_mb"] = max(record["peak_rss_mb"].values(), default=0.0)
    record["lost_max"] = scenario.lost_max(record, events)
    record["checks"] = checks(scenario, record)
    record["passed"] = all(c["ok"] for c in record["checks"])
    (folder / "record.json").write_text(json.dumps(record, indent=1))
    return record


def checks(scenario: Scenario, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bound of ``scenario`` against ``rec``: name, value, bound, ok."""
    b = scenario.bounds
    out = [
        ("fault injected", rec["injection_error"] or "yes", "yes", rec["injection_error"] is None),
        ("run finished on its budget", rec["finished"], True, rec["finished"]),
        ("lost episodes", rec["lost"], f"<= {rec['lost_max']} ({b.lost})",
         rec["lost"] <= rec["lost_max"]),
        ("trained twice", rec["trained_twice"], 0, rec["trained_twice"] == 0),
        ("time to recover s", rec["recover_s"], f"<= {b.recover_s}",
         rec["recover_s"] is not None and rec["recover_s"] <= b.recover_s),
        ("time to train a post-fault episode s", rec["fresh_s"], f"<= {b.fresh_s}",
         rec["fresh_s"] is not None and rec["fresh_s"] <= b.fresh_s),
        ("peak Redis used_memory MB", rec["peak_redis_mb"], f"<= {b.redis_mb:.0f}",
         0 < rec["peak_redis_mb"] <= b.redis_mb),
        ("peak RSS MB (any process)", rec["peak_rss_max_mb"], f"<= {b.rss_mb:.0f}",
         0 < rec["peak_rss_max_mb"] <= b.rss_mb),
        ("processes left behind", rec["leftover_processes"], 0, rec["leftover_processes"] == 0),
        *scenario.extra_checks(rec),
    ]
    return [{"name": n, "value": v, "bound": bound, "ok": bool(ok)} for n, v, bound, ok in out]


def failed(rec: dict[str, Any]) -> str:
    """The failed checks of a record, one per line (for assertion messages)."""
    return "\n".join(f"{c['name']}: {c['value']} (bound {c['bound']})"
                     for c in rec["checks"] if not c["ok"]) + \
        f"\nrun: {rec['run_path']}; memup up's last lines: {rec['tail']}"


def stamp() -> str:
    """A folder name for one suite run."""
    return time.strftime("faults-%Y%m%d-%H%M%S")
