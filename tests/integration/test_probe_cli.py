"""`memup probe` on a run directory: real ViZDoom episodes, the run's own networks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.checkpoint import save_checkpoint
from common.config import load_config
from memup.detector import SurpriseDetector
from tasks.registry import task_for


def memory_nets(config):  # type: ignore[no-untyped-def]
    return task_for(config).networks(config)

ROOT = Path(__file__).resolve().parents[2]


def write_run(run: Path, *overrides: str) -> None:
    """A run directory as `memup up` leaves it: config.json and a learner checkpoint."""
    config = load_config(overrides=overrides or [
        "task.env=two-colors", "task.length=60", "memup.hidden=16",
        "memup.reconstruction=1.0", "run.name=probed"])
    nets = memory_nets(config)
    detector = SurpriseDetector(nets.memory, nets.predictor, nets.kind, 0.995)
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.redacted()))
    save_checkpoint(run / "checkpoints" / "learner.pt",
                    {"detector": detector.state_dict(), "memup_updates": 7})


def probe(run: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "probe", str(run), "--episodes",
                           "4", "--workers", "1", "--json", *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_probe_reads_longer_episodes_than_the_run_trained_on(tmp_path: Path) -> None:
    run = tmp_path / "probed"
    write_run(run)
    # The run's own 60-step episodes end before step 45 + 30: a clear error, exit 2.
    short = probe(run, "--after", "30")
    assert short.returncode == 2 and "--length" in short.stderr
    assert probe(run, "--after", "5,x").returncode == 2
    done = probe(run, "--after", "5,30", "--length", "90")  # two probes of one collection
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["memup_updates"] == 7 and result["episodes"] == 4
    assert result["mean_length"] == 90  # the undamaged data floor: every episode times out
    assert [(c["after"], c["step"]) for c in result["colour"]] == [(5, 50), (30, 75)]
    assert all(c["episodes"] == 4 for c in result["colour"])
    assert all(c["n_swapped"] in (0, 2) for c in result["colour"])  # the held-out half
    assert result["window"]["step"] == json.loads((run / "config.json").read_text())[
        "memup"]["rollout"] - 1 and result["window"]["pickups"] >= 0


def test_a_task_without_a_probe_gets_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    run = tmp_path / "maze"
    write_run(run, "task.env=tmaze", "task.length=20", "memup.hidden=16", "run.name=maze")
    assert main(["probe", str(run)]) == 2
    err = capsys.readouterr().err
    assert "task 'tmaze'" in err and "defines no memory probe" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
