"""The cluster config: defaults < file < environment < --set, clear errors, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError, load_config
from tasks.registry import task_class, task_for


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[actor]\nenvs = 4\nreplicas = 3\n[memup]\nlr = 1e-3\n[run]\nname = "a"\n')
    env = {"MEMUP_ACTOR_ENVS": "8", "MEMUP_MEMUP_INTERACTION": "false",
           "REDIS_URL": "redis://:pw@h:1/0"}
    config = load_config(path, ["actor.envs=12", "scorer.top_k=3"], environ=env)
    assert config.actor.envs == 12  # flag beats environment beats file
    assert config.actor.replicas == 3  # file beats default
    assert config.memup.lr == pytest.approx(1e-3)
    assert config.memup.interaction is False
    assert config.scorer.top_k == 3
    assert config.redis.url == "redis://:pw@h:1/0"
    assert config.redacted()["redis"]["url"] == "redis://:***@h:1/0"
    assert config.run.name == "a"


def test_unrelated_environment_variables_are_ignored() -> None:
    config = load_config(environ={"MEMUP_HOME": "/x", "MEMUPX_ACTOR_ENVS": "3"})
    assert config.actor.envs == 16


@pytest.mark.parametrize(("overrides", "needle"), [
    (["actor.env=3"], "unknown key actor.env"),
    (["nosuch.key=1"], "unknown section"),
    (["actor.envs=many"], "not a valid int"),
    (["memup.interaction=maybe"], "not a valid bool"),
    (["actor.envs"], "use section.key=value"),
    (["ppo.mode=sideways"], "use frozen, joint or lstm"),
    (["run.name=a:b"], "invalid run name"),
    (["wire.codec=brotli"], "wire.codec 'brotli': use none, lz4, zstd"),
    (["wire.level=22"], "wire.level 22"),
    (["wire.min_bytes=-1"], "min_bytes >= 0"),
    (["actor.random_action_weights=1,x,2"], "comma-separated non-negative numbers"),
    (["actor.random_action_weights=1,-1"], "comma-separated non-negative numbers"),
    (["actor.random_action_weights=0,0"], "comma-separated non-negative numbers"),
    (["task.outcome_skip=-1"], "outcome_skip >= 0"),
    (["task.outcome_steps=0"], "outcome_steps >= 1"),
    (["memup.rollout=20", "memup.lane_horizon=10"], "lane_horizon 10: use 0"),
    (["memup.lane_horizon=-5"], "lane_horizon -5: use 0"),
    (["learner.init_memory_phase=3"], "init_memory_phase 3: use 2"),
    (["scorer.target_spacing=0"], "target_spacing 0: use 1"),
    (["memup.query_shift=4"], "only the image predictor"),
    (["memup.predictor_dropout=0.2"], "only the image predictor"),
    (["task.env=two-colors", "memup.query_shift=-1"], "shift >= 0 pixels"),
    (["task.env=two-colors", "memup.predictor_dropout=1.0"], "0 <= dropout < 1"),
])
def test_bad_values_are_refused_with_the_reason(overrides: list[str], needle: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=needle):
        task_for(load_config(overrides=overrides, environ={}))  # the task checks its fields


def test_wire_codec_is_set_like_any_field(tmp_path: Path) -> None:
    assert load_config(environ={}).wire.codec == "lz4"
    path = tmp_path / "w.toml"
    path.write_text('[wire]\ncodec = "lz4"\nmin_bytes = 1024\n')
    config = load_config(path, environ={"MEMUP_WIRE_LEVEL": "1"})
    assert (config.wire.codec, config.wire.level, config.wire.min_bytes) == ("lz4", 1, 1024)
    assert load_config(overrides=["wire.codec=zstd"], environ={}).wire.codec == "zstd"


def test_bad_file_is_refused_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[actor\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(path, environ={})
    path.write_text("[actor]\nenvs = [4]\n")
    with pytest.raises(ConfigError, match="expected int"):
        load_config(path, environ={})


def test_shipped_cluster_configs_load() -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    names = sorted(p.name for p in root.glob("up_*.toml"))
    assert "up_tmaze_lnr_1000.toml" in names
    for name in names:
        config = load_config(root / name, environ={})
        task_class(config.task.env)  # names a task (a gym one is made only where installed)


def test_a_config_file_can_list_only_what_differs_from_its_base(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[memup]\nhidden = 96\nlr = 0.002\n[task]\nlength = 40\n')
    (tmp_path / "variant.toml").write_text('base = "base.toml"\n[memup]\nlr = 0.004\n')
    config = load_config(tmp_path / "variant.toml", overrides=["task.length=50"])
    assert (config.memup.hidden, config.memup.lr, config.task.length) == (96, 0.004, 50)
    (tmp_path / "base.toml").write_text('base = "variant.toml"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "variant.toml")
    (tmp_path / "variant.toml").write_text('base = 3\n')
    with pytest.raises(ConfigError, match="base must be a file name"):
        load_config(tmp_path / "variant.toml")
