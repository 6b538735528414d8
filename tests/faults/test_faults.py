"""F1 to F8 on real processes: each fault injected into a running T-Maze-LNR-20 cluster.

Each test runs its scenario (cli/faults/scenarios.py states what is injected, when, and the
bounds) and asserts every check of its record: the run finishes on its env-step budget;
lost episodes within the scenario's bound (0 unless the fault itself destroys data: F3a's
AOF second, F3b's wiped streams); no episode trained twice by PPO; the worst time from a
fault to the learner's next training within its bound (30 s, 45 s for learner kills), and
to its first training on an episode produced after the fault within 60 s; Redis
used_memory <= 256 MB (F8: <= 1.9 GB, under the 2 GB maxmemory, with the flood's own 786 MB
in it, and refusing the flood adds <= 64 MB); every process's RSS <= 1.2 GB; nothing left
running. The figures are printed, and kept with MEMUP_FAULT_RESULTS=DIR.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.bench_faults import table
from cli.faults.record import failed, run_scenario
from cli.faults.scenarios import SCENARIOS

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("fault", list(SCENARIOS))
def test_fault(fault: str, tmp_path: Path, fault_results: Path | None,
               record_property: pytest.RecordProperty) -> None:
    record = run_scenario(SCENARIOS[fault], tmp_path)
    print("\n" + table([record]))
    for check in record["checks"]:
        record_property(check["name"], check["value"])
    if fault_results is not None:
        (fault_results / f"{fault}.json").write_text(json.dumps(record, indent=1))
    assert record["passed"], failed(record)
