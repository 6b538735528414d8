"""``memup train copy | scattered-copy | add`` through the one sequence runner
(cli/train_sequence.py): the same metrics as the per-task runners it replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import _leaf_parser, build_parser, main
from cli.options import parse_with_config
from cli.train_sequence import sequence_task
from tasks.sequence import SEQUENCE_TASKS

BASE = ["--rollout", "5", "--lanes", "4", "--eval-every", "10", "--eval-episodes", "10",
        "--threads", "1", "--device", "cpu", "--max-updates", "20"]
RUNS = {
    "copy-alternating": ["train", "copy", "--length", "30", "--train-size", "20", "--warmup",
                         "4", "--memory-updates", "4", "--predictor-updates", "4",
                         "--frequency", "5"],
    "scattered-copy-joint": ["train", "copy", "--scattered", "--length", "40", "--schedule",
                             "joint", "--train-size", "20", "--top-k", "3", "--frequency", "5",
                             "--interaction", "--chrono-horizon", "-1"],
    "add": ["train", "add", "--length", "30", "--seed", "3"],
}
# The train_ and eval_ values of metrics.jsonl, written by run_copy / run_add (cli/train_runs.py
# at c055f1c) before the one runner replaced them: same seed, same metrics.
BEFORE = {
    "copy-alternating": [
        {
            "train_loss": 2.2707837581634522,
            "train_accuracy": 0.2924999985843897,
            "train_pairs": 28.0,
            "train_steps": 20.0,
            "train_memory_phase": 0.4,
            "eval_loss": 2.3091559410095215,
            "eval_accuracy": 0.019999999552965164,
            "eval_online_accuracy": 0.0,
            "eval_online_loss": 2.316134214401245
        },
        {
            "train_loss": 2.173936975002289,
            "train_accuracy": 0.42749999947845935,
            "train_pairs": 28.0,
            "train_steps": 20.0,
            "train_memory_phase": 0.4,
            "eval_loss": 2.309267044067383,
            "eval_accuracy": 0.0,
            "eval_online_accuracy": 0.0,
            "eval_online_loss": 2.311234712600708
        }
    ],
    "scattered-copy-joint": [
        {
            "train_loss": 2.261355090141296,
            "train_accuracy": 0.30625,
            "train_pairs": 16.0,
            "train_steps": 20.0,
            "eval_loss": 2.299947500228882,
            "eval_accuracy": 0.14000000059604645,
            "eval_online_accuracy": 0.09000000357627869,
            "eval_online_loss": 2.297710657119751
        },
        {
            "train_loss": 2.08288756608963,
            "train_accuracy": 0.5875,
            "train_pairs": 16.0,
            "train_steps": 20.0,
            "eval_loss": 2.29909086227417,
            "eval_accuracy": 0.14000000059604645,
            "eval_online_accuracy": 0.09000000357627869,
            "eval_online_loss": 2.315288543701172
        }
    ],
    "add": [
        {
            "train_loss": 0.2454545147716999,
            "train_accuracy": 0.35,
            "train_pairs": 8.0,
            "train_steps": 20.0,
            "train_outcome_pairs": 4.0,
            "train_outcome_sign_accuracy": 1.0,
            "eval_mse": 1.0685498714447021,
            "eval_online_mse": 0.19567084312438965
        },
        {
            "train_loss": 0.12432157918810845,
            "train_accuracy": 0.6,
            "train_pairs": 8.0,
            "train_steps": 20.0,
            "train_outcome_pairs": 3.8,
            "train_outcome_sign_accuracy": 1.0,
            "eval_mse": 0.9886494874954224,
            "eval_online_mse": 0.16298501193523407
        }
    ]
}


def parse(argv: list[str]):
    parser = build_parser()
    return parse_with_config(parser, _leaf_parser(parser, argv), argv)


@pytest.mark.parametrize("name", list(RUNS))
def test_same_metrics_as_the_runners_it_replaced(name: str, tmp_path: Path) -> None:
    assert main([*RUNS[name], *BASE, "--run-dir", str(tmp_path / "run")]) == 0
    records = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    got = [{k: v for k, v in r.items() if k.startswith(("train_", "eval_"))}
           for r in records if "updates" in r]
    assert [sorted(r) for r in got] == [sorted(r) for r in BEFORE[name]]
    # Bit for bit on one machine; other CPUs' kernels may round differently.
    assert got == [pytest.approx(r, rel=1e-5, abs=1e-7) for r in BEFORE[name]]


@pytest.mark.parametrize(("argv", "name"), [
    (["train", "copy"], "copy"),
    (["train", "copy", "--scattered"], "scattered-copy"),
    (["train", "scattered-copy"], "scattered-copy"),
    (["train", "add"], "add"),
])
def test_each_subcommand_asks_its_registry_entry(argv: list[str], name: str) -> None:
    assert sequence_task(parse(argv)) is SEQUENCE_TASKS[name]


@pytest.mark.parametrize(("argv", "says"), [
    (["train", "copy", "--length", "20"], "copy-N needs N >= 21"),
    (["train", "add", "--length", "2"], "add-N needs N >= 3"),
    (["train", "copy", "--stagger"], "--stagger applies to --schedule joint"),
    (["train", "add", "--frequency", "30"], "--frequency 30 must be between 1 and --rollout"),
])
def test_bad_settings_fail_before_the_run_starts(argv: list[str], says: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--run-dir", str(tmp_path / "run")])
    assert says in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
