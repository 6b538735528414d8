"""One source per default: the cluster config and `memup train` take theirs from the algorithm
dataclasses; renamed keys fail naming the new one; shipped configs keep their values."""

from __future__ import annotations

import argparse
import inspect
import tomllib
from pathlib import Path

import pytest

from cli.main import _leaf_parser, build_parser, main
from cli.options import parse_with_config
from common.config import ClusterConfig, ConfigError, load_config
from memup.config import AlternatingSchedule, UpdateConfig, WalkConfig
from memup.detector import SurpriseDetector, TargetRule
from rl.ppo_config import PPOConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def train_args(*argv: str) -> argparse.Namespace:
    """``memup train …`` parsed as the command would (defaults < --config < flags)."""
    parser = build_parser()
    return parse_with_config(parser, _leaf_parser(parser, ["train", *argv]), ["train", *argv])


def test_cluster_sections_compose_the_algorithm_defaults() -> None:
    c = ClusterConfig()
    walk, update, ppo = WalkConfig(), UpdateConfig(), PPOConfig()
    assert (c.memup.lanes, c.memup.rollout, c.memup.frequency) == (
        walk.lanes, walk.rollout, walk.frequency)
    assert (c.memup.lr, c.memup.ema_decay) == (update.lr, update.ema_decay)
    assert (c.memup.reconstruction, c.memup.reconstruction_frames) == (
        update.reconstruction, update.reconstruction_frames)
    for key in ("lr", "clip", "epochs", "minibatch_episodes", "gamma", "lam", "entropy_coef",
                "value_coef"):
        assert getattr(c.ppo, key) == getattr(ppo, key), key


def test_scorer_defaults_match_the_detector_they_configure() -> None:
    # memup/detector.py imports torch, so the torch-free cluster config cannot read these
    # defaults from it: this test keeps the two equal.
    c, rule = ClusterConfig(), TargetRule()
    assert (c.scorer.top_k, c.scorer.current, c.scorer.target_spacing) == (
        rule.top_k, rule.current, rule.spacing)
    params = inspect.signature(SurpriseDetector).parameters
    assert (c.scorer.group, c.scorer.chunk) == (params["group"].default,
                                                params["chunk"].default)


def test_memup_train_flags_default_to_the_algorithm_dataclasses() -> None:
    walk, update, schedule = WalkConfig(), UpdateConfig(), AlternatingSchedule()
    tmaze = train_args("tmaze-memory")
    assert (tmaze.lanes, tmaze.rollout, tmaze.lr, tmaze.ema_decay) == (
        walk.lanes, walk.rollout, update.lr, update.ema_decay)
    copy = train_args("copy")
    assert (copy.warmup, copy.memory_updates, copy.predictor_updates, copy.ema_per_cycle,
            copy.memory_loss_scale, copy.top_k, copy.frequency, copy.lr) == (
        schedule.warmup, schedule.memory_updates, schedule.predictor_updates,
        schedule.ema_decay, schedule.memory_loss_scale, schedule.top_k,
        schedule.memory_frequency, schedule.lr)
    assert copy.ema_per_update == update.ema_decay
    assert train_args("add").ema_decay == update.ema_decay


@pytest.mark.parametrize(("name", "section", "key", "value"), [
    # the values every shipped config resolved to before the defaults moved
    ("up_tmaze_lnr_1000.toml", "memup", "lr", 5e-3),
    ("up_tmaze_lnr_1000.toml", "memup", "ema_decay", 0.995),
    ("up_tmaze_lnr_1000.toml", "ppo", "lr", 3e-4),
    ("up_tmaze_lnr_1000_lstm10.toml", "ppo", "lr", 3e-4),
    ("up_tmaze_lnr_20.toml", "memup", "lr", 3e-3),
    ("up_tmaze_lnr_20.toml", "ppo", "minibatch_episodes", 8),
    ("up_two_colors.toml", "memup", "lr", 1e-3),
    ("up_two_colors_phase2.toml", "ppo", "lr", 1e-3),
    ("up_two_colors_phase1.toml", "memup", "rollout", 60),
    ("up_popgym_repeat_previous.toml", "memup", "frequency", 1),
])
def test_shipped_cluster_configs_keep_their_values(name: str, section: str, key: str,
                                                   value: float) -> None:
    config = load_config(CONFIGS / name, environ={})
    assert getattr(getattr(config, section), key) == pytest.approx(value)


@pytest.mark.parametrize(("task", "name", "expected"), [
    ("tmaze-memory", "tmaze_lnr_1000.toml", {"lr": 5e-3, "ema_decay": 0.995, "lanes": 64}),
    ("tmaze-memory", "tmaze_lnr_100000.toml", {"lr": 5e-3, "lazy": True, "stagger": True,
                                               "skip": 480}),
    ("tmaze-memory", "tmaze_lnr_1000000.toml", {"lazy": True, "stagger": True, "skip": 480,
                                                "reuse": 4}),
    ("copy", "copy_120.toml", {"lr": 2e-3, "ema_per_update": 0.995, "ema_per_cycle": 0.97,
                               "lanes": 128, "schedule": "joint"}),
    ("scattered-copy", "scattered_copy_1020.toml", {"lr": 2e-3, "top_k": 10}),
    ("add", "add_1000.toml", {"lr": 1e-3, "ema_decay": 0.995, "eval_every": 250}),
])
def test_shipped_train_configs_keep_their_values(task: str, name: str,
                                                 expected: dict[str, object]) -> None:
    args = train_args(task, "--config", str(CONFIGS / name))
    assert {key: getattr(args, key) for key in expected} == expected


def test_train_task_defaults_kept_their_values() -> None:
    assert train_args("tmaze-memory").lr == 5e-3
    assert (train_args("copy").lr, train_args("copy").lanes) == (2e-4, 128)
    assert (train_args("add").lr, train_args("add").eval_every) == (1e-3, 250)


RENAMED = "[task] data_floor_damage was renamed to [task] data_floor_damage_share"


def test_an_old_cluster_key_fails_naming_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[task]\ndata_floor_damage = false\n")
    with pytest.raises(ConfigError, match=rf"^config {path}: \[task\] data_floor_damage was"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match=r"^--set task.data_floor_damage: \[task\]"):
        load_config(overrides=["task.data_floor_damage=false"], environ={})
    with pytest.raises(ConfigError, match=r"^environment MEMUP_TASK_DATA_FLOOR_DAMAGE: "):
        load_config(environ={"MEMUP_TASK_DATA_FLOOR_DAMAGE": "0"})
    with pytest.raises(ConfigError) as error:
        load_config(values={"task": {"data_floor_damage": False}}, environ={})
    assert RENAMED in str(error.value) and "\n" not in str(error.value)


def test_unknown_cluster_keys_fail_from_every_origin(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[ppo]\nlearning_rate = 1e-3\n")
    with pytest.raises(ConfigError, match=r"unknown key ppo\.learning_rate"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match=r"unknown key ppo\.learning_rate"):
        load_config(environ={"MEMUP_PPO_LEARNING_RATE": "1e-3"})
    with pytest.raises(ConfigError, match=r"unknown key ppo\.learning_rate"):
        load_config(overrides=["ppo.learning_rate=1e-3"], environ={})


def test_memup_up_reports_a_renamed_key_in_one_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[task]\ndata_floor_damage = false\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["up", "--config", str(path)])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert RENAMED in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("task", ["copy", "scattered-copy"])
def test_an_old_train_key_or_flag_fails_naming_the_new_one(
        task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.toml"
    path.write_text("length = 120\nema_decay = 0.9\n")
    for argv in (["--config", str(path)], ["--ema-decay", "0.9"]):
        with pytest.raises(SystemExit) as exit_info:
            train_args(task, *argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert ("ema_decay was renamed to ema_per_cycle" in err
                or "--ema-decay was renamed to --ema-per-cycle" in err)


def test_unknown_train_keys_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("length = 120\nlearning_rate = 1e-3\n")
    with pytest.raises(SystemExit):
        train_args("tmaze-memory", "--config", str(path))
    err = capsys.readouterr().err
    assert "unknown keys ['learning_rate']" in err and "'ema_decay'" in err


def test_the_configuration_page_lists_every_key_with_its_default() -> None:
    page = (CONFIGS.parent / "docs" / "configuration.md").read_text()
    documented: dict[tuple[str, str], object] = {}
    section = ""
    for line in page.splitlines():
        if line.startswith("#"):  # a section's table, or the end of the last one
            section = line[5:-1] if line.startswith("### [") else ""
        elif section and line.startswith("| ") and "`" in line:
            key, default = (cell.strip() for cell in line.split("|")[1:3])
            documented[(section, key)] = tomllib.loads(f"v = {default.strip('`')}")["v"]
    config = ClusterConfig()
    actual = {(name, key): value for name, table in config.to_dict().items()
              for key, value in table.items()}
    assert documented == actual


def test_accuracy_episodes_is_now_accuracy_outcomes() -> None:
    """It always counted scored outcomes (many an episode for some tasks): a config that still
    says episodes stops with the new name instead of being read with a surprising meaning."""
    with pytest.raises(ConfigError, match=r"\[memup\] accuracy_episodes was renamed to "
                                          r"\[memup\] accuracy_outcomes"):
        load_config(overrides=["memup.accuracy_episodes=100"], environ={})
    assert load_config(overrides=["memup.accuracy_outcomes=7"],
                       environ={}).memup.accuracy_outcomes == 7


def test_a_runs_own_config_json_is_read_under_renamed_keys() -> None:
    """A run directory written before a pure rename still evaluates and resumes: its
    machine-written config.json is upgraded; a key whose meaning changed still fails."""
    from common.config_renames import upgrade_resolved

    old = ClusterConfig().to_dict()
    old["memup"]["accuracy_episodes"] = old["memup"].pop("accuracy_outcomes")
    old["memup"]["accuracy_episodes"] = 37
    assert load_config(values=upgrade_resolved(old), environ={}).memup.accuracy_outcomes == 37
    assert "accuracy_episodes" in old["memup"]  # the caller's dict is left alone
    changed = ClusterConfig().to_dict()
    changed["task"]["data_floor_damage"] = False
    with pytest.raises(ConfigError, match="data_floor_damage was renamed"):
        load_config(values=upgrade_resolved(changed), environ={})
