"""``memup train scattered-copy`` and ``memup train add``: flags, configs, stop rule, runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli.driver import StopRule
from cli.main import _leaf_parser, build_parser, main
from cli.options import parse_with_config
from tasks.sequence.networks import add_nets
from tests.unit.resume_support import assert_same_networks

ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str]):
    parser = build_parser()
    return parse_with_config(parser, _leaf_parser(parser, argv), argv)


def test_scattered_copy_is_copy_with_scattered_sequences() -> None:
    args = parse(["train", "scattered-copy", "--length", "220", "--schedule", "joint"])
    assert args.scattered is True
    assert args.length == 220 and args.schedule == "joint"
    assert args.run.__name__ == "run" and args.lanes == 128
    assert parse(["train", "copy"]).scattered is False


def test_add_stops_on_mse_not_accuracy() -> None:
    args = parse(["train", "add", "--target-mse", "0.01"])
    assert args.target_mse == 0.01
    assert not hasattr(args, "target_accuracy")
    with pytest.raises(SystemExit):
        parse(["train", "add", "--target-accuracy", "0.9"])


@pytest.mark.parametrize(("task", "config"), [
    ("scattered-copy", "configs/scattered_copy_1020.toml"),
    ("add", "configs/add_1000.toml"),
    ("copy", "configs/copy_1020.toml"),
])
def test_shipped_configs_parse(task: str, config: str) -> None:
    args = parse(["train", task, "--config", str(ROOT / config)])
    assert args.length in (1000, 1020)
    assert args.rollout == 20


def test_stop_rule_minimises_or_maximises() -> None:
    mse = StopRule(10, target=0.01, metric="mse", minimise=True)
    assert mse.reached({"mse": 0.01}) and not mse.reached({"mse": 0.02})
    acc = StopRule(10, target=0.99)
    assert acc.reached({"accuracy": 0.995}) and not acc.reached({"accuracy": 0.5})
    assert not StopRule(10).reached({"accuracy": 1.0})


def test_add_nets_regress_one_value_per_pair() -> None:
    nets = add_nets(hidden=16, interaction=True)
    out, _ = nets.memory(torch.zeros(3, 7, 3), nets.memory.initial_state(3))
    pred = nets.predictor(out[:, -1], torch.zeros(3, 3))
    assert nets.kind == "regression" and pred.shape == (3,)


ADD = ["train", "add", "--length", "30", "--rollout", "5", "--lanes", "4", "--eval-every",
       "10", "--eval-episodes", "20", "--threads", "1", "--device", "cpu", "--seed", "3"]


def test_add_run_logs_mse_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert main([*ADD, "--max-updates", "40", "--run-dir", str(straight)]) == 0
    assert main([*ADD, "--max-updates", "20", "--run-dir", str(halves)]) == 0
    assert main([*ADD, "--max-updates", "40", "--run-dir", str(halves), "--resume"]) == 0
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["updates"] for r in records] == [10, 20, 30, 40]
    assert all(r["eval_mse"] >= 0 and "eval_online_mse" in r for r in records)
    assert (straight / "mse.png").exists()
    assert_same_networks(straight, halves)
    resumed = [json.loads(line) for line in (halves / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval_mse"] for r in resumed] == [r["eval_mse"] for r in records]


COPY = ["train", "scattered-copy", "--length", "60", "--rollout", "10", "--lanes", "4",
        "--schedule", "joint", "--frequency", "5", "--train-size", "50", "--eval-every", "10",
        "--eval-episodes", "20", "--threads", "1", "--device", "cpu", "--stagger"]


def test_staggered_copy_starts_lanes_apart_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert main([*COPY, "--max-updates", "30", "--run-dir", str(straight)]) == 0
    assert main([*COPY, "--max-updates", "10", "--run-dir", str(halves)]) == 0
    assert main([*COPY, "--max-updates", "30", "--run-dir", str(halves), "--resume"]) == 0
    assert_same_networks(straight, halves)
    with pytest.raises(SystemExit):  # the stagger decides the walk: it must match on resume
        main([*COPY[:-1], "--max-updates", "40", "--run-dir", str(halves), "--resume"])
