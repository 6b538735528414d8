"""Checks of a resolved cluster config across its fields, each failing with one line.

:func:`common.config.load_config` runs :func:`check` on every config it resolves, so a bad
value stops a command before any role starts. What depends on the task (whether it has
frames, say) is checked by the task itself (:meth:`tasks.base.Task.check`, run by
:func:`tasks.registry.task_for`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.keys import validate_id
from common.wire_codec import CODECS, ZSTD_LEVELS

if TYPE_CHECKING:
    from common.config import ClusterConfig

INIT_ENCODERS = ("", "predictor", "memory")
"""``ppo.init_encoder``: a fresh policy CNN, or phase I's predictor or memory CNN."""


class ConfigError(ValueError):
    """A config file, variable or flag that names no field or holds an unusable value."""


def check(config: ClusterConfig) -> None:
    """Raises :class:`ConfigError` (or ValueError for a bad run name) for a value that no
    role could use, naming the key and what to use instead."""
    validate_id(config.run.name, "run name")
    kind, colon, index = config.run.device.partition(":")
    if not (config.run.device in ("auto", "cpu", "cuda", "mps")
            or (kind == "cuda" and colon and index.isdigit())):
        raise ConfigError(f"run.device {config.run.device!r}: use auto, cpu, cuda, cuda:N "
                          "or mps")
    size = config.redis.embedded_maxmemory.strip().lower()
    digits = len(size) - len(size.lstrip("0123456789"))
    if not digits or size[digits:] not in ("", "b", "k", "kb", "m", "mb", "g", "gb"):
        raise ConfigError(f"redis.embedded_maxmemory {config.redis.embedded_maxmemory!r}: "
                          "use a Redis size such as 512mb or 2gb")
    if config.ppo.mode not in ("frozen", "joint", "lstm"):
        raise ConfigError(f"ppo.mode {config.ppo.mode!r}: use frozen, joint or lstm")
    if config.wire.codec not in CODECS:
        raise ConfigError(f"wire.codec {config.wire.codec!r}: use {', '.join(CODECS)}")
    if config.wire.level not in ZSTD_LEVELS or config.wire.min_bytes < 0:
        raise ConfigError(f"wire.level {config.wire.level} / wire.min_bytes "
                          f"{config.wire.min_bytes}: use a level in {ZSTD_LEVELS.start}.."
                          f"{ZSTD_LEVELS.stop - 1} and min_bytes >= 0")
    if config.task.outcome_steps < 1 or config.task.outcome_skip < 0:
        raise ConfigError(f"task.outcome_steps {config.task.outcome_steps} / task.outcome_skip "
                          f"{config.task.outcome_skip}: use outcome_steps >= 1, outcome_skip >= 0")
    if config.scorer.target_spacing < 1:
        raise ConfigError(f"scorer.target_spacing {config.scorer.target_spacing}: use 1 (plain "
                          f"top-K) or more (targets at least that many steps apart)")
    m = config.memup
    if m.reconstruction < 0 or m.reconstruction_frames < 1:
        raise ConfigError(f"memup.reconstruction {m.reconstruction} / memup.reconstruction_frames "
                          f"{m.reconstruction_frames}: use a weight >= 0 and frames >= 1")
    if m.query_shift < 0 or not 0 <= m.predictor_dropout < 1:
        raise ConfigError(f"memup.query_shift {m.query_shift} / memup.predictor_dropout "
                          f"{m.predictor_dropout}: use a shift >= 0 pixels and 0 <= dropout < 1")
    if m.lane_horizon and not m.rollout <= m.lane_horizon:
        raise ConfigError(f"memup.lane_horizon {m.lane_horizon}: use 0 (whole episodes) or at "
                          f"least one rollout (memup.rollout = {m.rollout})")
    if config.learner.init_memory_phase not in (1, 2):
        raise ConfigError(f"learner.init_memory_phase {config.learner.init_memory_phase}: use 2 "
                          "(PPO on the adopted memory at once) or 1 (phase I trains it further)")
    p = config.ppo
    if p.init_encoder not in INIT_ENCODERS:
        raise ConfigError(f"ppo.init_encoder {p.init_encoder!r}: use one of "
                          f"{', '.join(repr(e) for e in INIT_ENCODERS)}")
    action_weights(config.actor.random_action_weights)
    action_weights(config.ppo.action_prior, "ppo.action_prior")


def action_weights(text: str, field: str = "actor.random_action_weights") -> tuple[float, ...]:
    """Relative action weights, the text of config ``field``: () for "" (uniform), else
    comma-separated non-negative weights, not all zero (their count is checked against the
    task's actions where the policy is built).

    Raises:
        ConfigError: anything else.
    """
    if not text.strip():
        return ()
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        weights = ()
    if not weights or any(not 0 <= w < float("inf") for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"{field} {text!r}: use comma-separated "
                          "non-negative numbers, one per action, e.g. \"1,1,4,0.25,2,0.25,2,0.25\"")
    return weights
