"""End-to-end tests of the ``memup`` console script, each command a real subprocess.

The commands are started in the background by this directory's conftest (see
``clijobs.py``); each test waits for the command it checks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from common.checkpoint import load_checkpoint
from tests.integration.clijobs import BAD_INPUTS, HELP, JobSet


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def evaluations(run_dir: Path) -> list[dict]:
    return [r for r in records(run_dir) if "eval_accuracy" in r]


def explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("name", list(HELP))
def test_help(cli_jobs: JobSet, name: str) -> None:
    done = cli_jobs.result(f"help-{name}")
    assert done.returncode == 0, explain(done)
    assert "usage: memup" in done.stdout
    assert "examples" in done.stdout


def test_tmaze_run_writes_its_files(cli_jobs: JobSet) -> None:
    done = cli_jobs.result("tmaze")["first"]
    assert done.returncode == 0, explain(done)
    run_dir = cli_jobs.root / "tmaze"
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "accuracy.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["length"] == 20 and config["rollout"] == 5 and config["lanes"] == 4
    assert len(records(run_dir)) == 2
    evals = evaluations(run_dir)
    assert [r["updates"] for r in evals] == [3, 6]
    assert all(0.0 <= r["eval_accuracy"] <= 1.0 for r in evals)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["training"]["updater"]["updates"] == 6
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["updates"] == 6


def test_tmaze_rerun_needs_resume_and_resume_continues(cli_jobs: JobSet) -> None:
    chain = cli_jobs.result("tmaze")
    assert chain["first"].returncode == 0, explain(chain["first"])
    run_dir = cli_jobs.root / "resume"  # a copy of the first run's directory

    again = chain["again"]
    assert again.returncode != 0
    assert "--resume" in again.stderr
    # The refused run touched nothing.
    assert chain["metrics_after_refusal"] == (cli_jobs.root / "tmaze" / "metrics.jsonl").read_text()

    resumed = chain["resumed"]
    assert resumed.returncode == 0, explain(resumed)
    logged = records(run_dir)
    assert len(logged) == 3
    assert [r["updates"] for r in logged] == [3, 6, 9]
    assert "eval_accuracy" in logged[-1]
    assert load_checkpoint(run_dir / "checkpoint.pt")["training"]["updater"]["updates"] == 9


def test_config_file_sets_values_and_flags_override(cli_jobs: JobSet) -> None:
    done = cli_jobs.result("config")
    assert done.returncode == 0, explain(done)
    run_dir = cli_jobs.root / "config"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["length"] == 20 and config["rollout"] == 5 and config["mode"] == "LN"
    assert config["max_updates"] == 2 and config["eval_episodes"] == 4
    assert config["lanes"] == 4  # the flag wins over the file's 3
    (last,) = evaluations(run_dir)
    assert last["updates"] == 2
    # The values were used, not just recorded: 4 lanes × 5 steps × (top-1 + current step).
    assert last["train_pairs"] == 4 * 5 * 2
    assert last["train_steps"] == 4 * 5


def test_unknown_config_key_is_an_error(cli_jobs: JobSet) -> None:
    done = cli_jobs.result("unknown")
    assert done.returncode != 0
    assert "lenght" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (cli_jobs.root / "bad").exists()


def test_copy_run(cli_jobs: JobSet) -> None:
    done = cli_jobs.result("copy")
    assert done.returncode == 0, explain(done)
    run_dir = cli_jobs.root / "copy"
    evals = evaluations(run_dir)
    assert [r["updates"] for r in evals] == [4, 8]
    for r in evals:
        assert 0.0 <= r["eval_accuracy"] <= 1.0
        assert 0.0 <= r["eval_online_accuracy"] <= 1.0
        # Warm-up 2, then memory and predictor phases of 2: each window mixes both phases.
        assert 0.0 < r["train_memory_phase"] < 1.0
    assert (run_dir / "checkpoint.pt").is_file()


def test_bench_memory_json(cli_jobs: JobSet) -> None:
    done = cli_jobs.result("bench")
    assert done.returncode == 0, explain(done)
    report = json.loads(done.stdout)
    results = report["results"]
    assert len(results) == 4
    keys = {"method", "length", "saved_bytes", "peak_rss_bytes", "seconds_per_update", "status"}
    for r in results:
        assert keys <= set(r), r
        assert r["status"] == "ok", r
        assert r["saved_bytes"] > 0 and r["peak_rss_bytes"] > 0
    by = {(r["method"], r["length"]): r for r in results}
    assert set(by) == {("memup", 200), ("memup", 2000), ("bptt", 200), ("bptt", 2000)}
    short, long = by["memup", 200]["saved_bytes"], by["memup", 2000]["saved_bytes"]
    assert abs(long - short) <= 0.1 * short
    assert by["bptt", 2000]["saved_bytes"] > by["bptt", 200]["saved_bytes"]
    assert by["bptt", 2000]["saved_bytes"] > long


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_nothing(cli_jobs: JobSet, name: str) -> None:
    done = cli_jobs.result(f"bad-{name}")
    assert done.returncode == (4 if name == "up-dead-redis" else 2), explain(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, explain(done)
    assert "Traceback" not in done.stderr
    assert not (cli_jobs.root / f"bad-{name}").exists()
    assert not (cli_jobs.root / "runs").exists()
    expected = {"length-negative": "--length: must be a positive integer, got -5",
                "length-zero": "--length: must be a positive integer, got 0",
                "copy-lanes-zero": "--lanes: must be a positive integer, got 0",
                "rollout-zero": "--rollout: must be a positive integer, got 0",
                "file-length-negative": "length = -5: must be a positive integer",
                "up-device": "run.device 'tpu': use auto, cpu, cuda, cuda:N or mps",
                "up-maxmemory": "redis.embedded_maxmemory 'lots'",
                "up-dead-redis": "connecting to redis://:***@127.0.0.1:1/0: gave up",
                "eval-record-tmaze": "--record: 'tmaze' has no frames to record"}[name]
    assert expected in lines[0], explain(done)
    if name == "eval-record-tmaze":
        assert not (cli_jobs.root / "out.gif").exists()
