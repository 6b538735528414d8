"""The cluster configuration: an experiment file, then environment variables, then CLI flags.

One frozen dataclass per section. A TOML file under ``configs/`` sets any field as
``[section] key = value``; the environment overrides it with ``MEMUP_<SECTION>_<KEY>``
(``MEMUP_ACTOR_ENVS=32``; ``REDIS_URL`` sets ``redis.url``), and ``--set section.key=value``
flags override both. Every role of a run loads the same resolved config (logged at DEBUG);
``memup up`` and the learner save it as the run's ``config.json`` with secrets redacted.
A key that was renamed fails with one line naming its new name (``common/config_renames.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from common.config_checks import INIT_ENCODERS, ConfigError, action_weights, check
from common.config_renames import cluster_message
from common.redis_io import redact_url
from memup.config import UpdateConfig, WalkConfig
from rl.ppo_config import PPOConfig

__all__ = ["INIT_ENCODERS", "ClusterConfig", "ConfigError", "action_weights", "load_config"]

ENV_PREFIX = "MEMUP_"


@dataclass(frozen=True)
class RunConfig:
    name: str = "tmaze-lnr"  #: run id: every Redis key of the run lives under memup:{name}:
    dir: str = "runs"  #: runs/<name>/ holds config.json, metrics.jsonl, checkpoints, curves
    seed: int = 0
    device: str = "auto"  #: learner/scorer device: auto (CUDA when present), cpu, cuda:0
    threads: int = 1  #: torch threads per role process
    #: address every role's /metrics binds: loopback by default, 0.0.0.0 in containers
    metrics_addr: str = "127.0.0.1"
    #: also write every scalar of metrics.jsonl as TensorBoard events in runs/<name>/tensorboard/
    #: (needs pip install -e ".[tensorboard]"; without it one line says so and the run goes on)
    tensorboard: bool = False


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""  #: empty: `memup up` starts an embedded redis-server
    max_frame_bytes: int = 8 * 1024 * 1024
    fragment_ttl_s: int = 600  #: an abandoned episode's fragments expire by themselves
    stream_maxlen: int = 20_000  #: episodes stream cap (MAXLEN ~)
    #: refused frames kept in the dead-letter stream, each cut to dead_letter_sample_bytes:
    #: at most about maxlen * (sample + 600) bytes of Redis memory (1.6 MB by default)
    dead_letter_maxlen: int = 1_000
    dead_letter_sample_bytes: int = 1024
    embedded_maxmemory: str = "2gb"  #: `memup up`'s Redis: writes fail (never evict) above it


@dataclass(frozen=True)
class ZmqConfig:
    curve_keys: str = ""  #: CURVE key directory (see common/curve.py); empty: no CURVE


@dataclass(frozen=True)
class WireConfig:
    #: how senders compress large arrays (fragments, segments, rollouts): none, lz4 or zstd;
    #: receivers read any of them. lz4 by measurement: "Wire compression of frames" in
    #: docs/results.md
    codec: str = "lz4"
    level: int = 1  #: zstd level (-7..19); 3 encodes 4x slower than 1 for 13% fewer bytes
    min_bytes: int = 4096  #: arrays smaller than this always travel raw


@dataclass(frozen=True)
class TaskConfig:
    #: the task (tasks/registry.py): a named one (tmaze, two-colors), "gym:<id>" (a registered
    #: gymnasium id; "gym:<module>:<id>" imports the module that registers it) or
    #: "<module>:<callable>" (returns a gymnasium env)
    env: str = "tmaze"
    #: gym tasks: keyword arguments of gymnasium.make or of the callable (a TOML table; a
    #: JSON object in an environment variable or a --set flag)
    gym_kwargs: dict[str, Any] = field(default_factory=dict)
    #: gym tasks: an episode whose return reaches this counts as a success (the default is
    #: out of reach, and finite so that config.json stays standard JSON: the run then stops
    #: at ppo.max_env_steps)
    success_return: float = 1e30
    mode: str = "LNR"  #: T-Maze mode
    length: int = 1000  #: T-Maze corridor length; Two-Colors: the episode limit in agent steps
    variant: str = "standard"  #: Two-Colors variant: standard, hard or delay
    delay_tics: int = 2000  #: Two-Colors delay variant: tics in the medikit room
    floor_damage: bool = True  #: Two-Colors: the nukage floor drains health
    #: Two-Colors: the share of the envs the random data policy plays before any policy is
    #: published (phase I) whose floor drains health. Without damage random episodes run to
    #: the timeout instead of ~100 steps; with it the frames show the red pain flashes
    #: phase II will see. Slots alternate (0.5: every other env).
    data_floor_damage_share: float = 1.0
    #: Two-Colors: the outcome y_k MemUP predicts is the sum of the rewards of steps
    #: k … k+n-1 (an item is picked up below the view; the frames before show it)
    outcome_steps: int = 5
    #: Two-Colors: the outcome's sum starts j steps after k (rewards k+j … k+j+n-1), so the
    #: frame of step k still shows the item walked into (0: from k itself)
    outcome_skip: int = 0


@dataclass(frozen=True)
class ActorConfig:
    replicas: int = 2  #: actor processes `memup up` starts
    envs: int = 16  #: environments per actor process
    fragment_steps: int = 128
    weights_poll_s: float = 0.5
    queue_fragments: int = 512  #: publisher queue bound; beyond it the oldest is dropped
    max_backlog: int = 64  #: episodes not yet consumed downstream before the actor pauses
    max_env_failures: int = 5  #: consecutive env crashes before the actor exits
    #: phase I's random data policy holds each action for U{1..n} steps (see
    #: actor/random_policy.py; Two-Colors needs walks, not jitter, to see what it picks up)
    random_hold_steps: int = 1
    #: phase I's data policy draws actions with these relative weights, one per action,
    #: comma-separated ("": uniform). Two-Colors favours forward moves: an item walked into
    #: backwards is never seen before its pickup (actor/random_policy.py)
    random_action_weights: str = ""
    metrics_port: int = 0  #: 0: any free port (`memup up` assigns one per replica)


@dataclass(frozen=True)
class ScorerConfig:
    replicas: int = 1
    group: int = 16  #: episodes scored per detector pass
    chunk: int = 64
    top_k: int = 1  #: K most surprising future steps per step (the paper: top-1 + current)
    current: bool = True  #: the current step is a target too
    #: top-K targets are peaks among the target_spacing - 1 steps each side (1: plain top-K);
    #: set it to task.outcome_steps so that one outcome does not take several targets
    target_spacing: int = 1
    replay_episodes: int = 2000  #: replay window; evicted episodes' keys are deleted
    bind_host: str = "127.0.0.1"
    advertise_host: str = "127.0.0.1"
    port: int = 0  #: segment server port, 0: any free port
    endpoint_ttl_s: int = 5
    janitor_idle_s: float = 30.0  #: XAUTOCLAIM min idle time
    janitor_period_s: float = 5.0
    cache_episodes: int = 256  #: assembled marked episodes kept in memory by the server
    #: a learner silent this long loses what it was handed (rollouts go to the next learner)
    lease_s: float = 30.0
    metrics_port: int = 0


@dataclass(frozen=True)
class MemupConfig:
    """Phase I's MemUP training; what the algorithm defines takes its default from
    ``memup/config.py`` (one source for ``memup up`` and ``memup train``)."""

    hidden: int = 256
    cnn: str = "small"  #: image tasks: CNN widths, small (CPU) or nature (memup-spec E.9)
    chrono: int = -1  #: chrono init horizon; -1: the task length
    interaction: bool = True
    #: image tasks: weight of the CNNs' thumbnail loss (0: off)
    reconstruction: float = UpdateConfig.reconstruction
    #: frames reconstructed per update, inputs and targets each
    reconstruction_frames: int = UpdateConfig.reconstruction_frames
    query_shift: int = 0  #: image tasks: the predictor's target frames moved by up to N pixels
    predictor_dropout: float = 0.0  #: image tasks: dropout on the predictor head's inputs
    lanes: int = WalkConfig.lanes
    rollout: int = WalkConfig.rollout
    frequency: int = WalkConfig.frequency
    #: a lane leaves its episode for a new one after this many steps (0: walks it to the
    #: end), so early steps (e.g. those that saw Two-Colors' pillar) are more of each batch;
    #: targets still come from the whole episode
    lane_horizon: int = 0
    lr: float = UpdateConfig.lr
    ema_decay: float = UpdateConfig.ema_decay
    target_accuracy: float = 0.99  #: phase I ends when the detector's accuracy reaches this
    accuracy_outcomes: int = 100  #: newest scored outcomes it is measured on
    max_updates: int = 20_000  #: phase I budget
    publish_every: int = 25  #: detector weights published every this many updates
    min_replay: int = 64  #: episodes in the window before training starts
    warmup_episodes: int = 128  #: episodes actors may produce before training has begun
    replay_ratio: float = 1.0  #: trained steps per env step: actors wait beyond it
    measure_every: int = 50  #: stored-bytes-for-backward measured every this many updates


@dataclass(frozen=True)
class PpoConfig:
    """Phase II's PPO; the optimiser's settings take their defaults from ``rl/ppo_config.py``."""

    mode: str = "frozen"  #: frozen (two-phase), joint, or lstm (the PPO-LSTM baseline)
    lr: float = PPOConfig.lr
    clip: float = PPOConfig.clip
    epochs: int = PPOConfig.epochs
    minibatch_episodes: int = PPOConfig.minibatch_episodes
    episodes_per_update: int = 32
    gamma: float = PPOConfig.gamma
    lam: float = PPOConfig.lam
    entropy_coef: float = PPOConfig.entropy_coef
    value_coef: float = PPOConfig.value_coef
    max_lag: int = 2  #: episodes played by an older policy are dropped (and counted)
    hidden: int = 256
    tbptt: int = 10  #: lstm mode: truncated BPTT length
    #: image tasks, frozen/joint modes: the heads also read a PPO-trained CNN of the current
    #: frame beside m_t (memup-spec E.10; a deviation from the paper's m_t-only policy)
    frame_features: bool = False
    #: frame_features: the heads also read m_t ⊙ W·CNN(frame_t), the predictor's product
    interaction: bool = False
    #: frame_features: phase II starts the policy CNN from phase I's "predictor" (its
    #: target-frame CNN and, with interaction, its question layer) or "memory" CNN
    init_encoder: str = ""
    #: frame_features, frozen mode: the heads also read phase I's frozen predictor's outcome
    #: for each action, q(y | m_t, frame_t, a), and add gain * it to the logits
    outcome_features: bool = False
    #: the policy starts at these relative action weights instead of uniform ("": uniform),
    #: e.g. actor.random_action_weights, so that PPO explores as phase I's data policy does
    action_prior: str = ""
    memup_updates_per_ppo: int = 50  #: joint mode
    soft_keep: float = 0.9  #: joint mode: policy memory <- keep*policy + (1-keep)*memup
    target_success: float = 0.95  #: the run stops when this success rate is reached
    success_episodes: int = 200
    max_env_steps: int = 5_000_000


@dataclass(frozen=True)
class LearnerConfig:
    checkpoint_every_s: float = 120.0  #: phase I; PPO updates are each saved before their acks
    keep_checkpoints: int = 2
    request_timeout_s: float = 5.0  #: a segment not answered in this time is asked again
    #: after the run's goal or budget: exit (memup up ends the run) or wait to be stopped
    #: (compose / k8s restart an exited learner; waiting keeps a finished run finished)
    idle_when_done: bool = False
    #: a run directory (or its checkpoints/learner.pt) whose trained memory this run starts
    #: from: frozen mode skips phase I and trains PPO on that memory at once
    init_memory: str = ""
    #: the phase an ``init_memory`` run starts in: 2 (PPO at once in frozen mode) or 1 (more
    #: MemUP training of the adopted memory first, e.g. a second phase I stage)
    init_memory_phase: int = 2
    metrics_port: int = 0


@dataclass(frozen=True)
class ClusterConfig:
    run: RunConfig = field(default_factory=RunConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    zmq: ZmqConfig = field(default_factory=ZmqConfig)
    wire: WireConfig = field(default_factory=WireConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    memup: MemupConfig = field(default_factory=MemupConfig)
    ppo: PpoConfig = field(default_factory=PpoConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (for JSON logs and for child processes)."""
        return dataclasses.asdict(self)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """:meth:`to_dict` with the Redis password hidden."""
        out = self.to_dict()
        out["redis"]["url"] = redact_url(out["redis"]["url"])
        return out


def _coerce(value: Any, kind: Any, where: str) -> Any:
    if get_origin(kind) is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: {value!r} is not a JSON object ({exc})") from None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a table (a JSON object), got {value!r}")
        return dict(value)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return text in ("1", "true", "yes", "on")
            return kind(text)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a valid {kind.__name__}") from None
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} "
                          f"{value!r}")
    return value


def _apply(config: ClusterConfig, section: str, key: str, value: Any, where: str,
           origin: str = "") -> ClusterConfig:
    """``config`` with ``[section] key`` set from ``value``, which ``where`` names (a file's
    key: ``origin`` is the file alone, for the line that names a renamed key)."""
    sections = get_type_hints(ClusterConfig)
    if section not in sections:
        raise ConfigError(f"{where}: unknown section {section!r}; sections: {sorted(sections)}")
    current = getattr(config, section)
    fields = get_type_hints(type(current))
    renamed = cluster_message(section, key)
    if renamed is not None:
        raise ConfigError(f"{origin or where}: {renamed}")
    if key not in fields:
        raise ConfigError(f"{where}: unknown key {section}.{key}; keys of [{section}]: "
                          f"{sorted(fields)}")
    updated = dataclasses.replace(current, **{key: _coerce(value, fields[key], where)})
    return dataclasses.replace(config, **{section: updated})


def file_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[dict[str, Any], str]]:
    """The tables of a config file, after those of the file its top-level ``base = "…"``
    names (relative to it): a variant lists only what differs from its base."""
    if path.resolve() in seen:
        raise ConfigError(f"config {path}: base files form a cycle")
    try:
        tables = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    base = tables.pop("base", None)
    if base is None:
        return [(tables, f"config {path}")]
    if not isinstance(base, str):
        raise ConfigError(f"config {path}: base must be a file name, got {base!r}")
    return [*file_layers(path.parent / base, (*seen, path.resolve())),
            (tables, f"config {path}")]


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                environ: Mapping[str, str] | None = None,
                values: Mapping[str, Mapping[str, Any]] | None = None) -> ClusterConfig:
    """Resolves the config: defaults < ``path`` (after its ``base``) < ``values`` <
    environment < ``overrides``.

    Args:
        path: an experiment TOML file (``[section] key = value``).
        overrides: ``section.key=value`` strings (the ``--set`` flags).
        environ: the environment (default ``os.environ``).
        values: a nested dict, e.g. a resolved config handed to a child process.

    Raises:
        ConfigError: an unreadable file, an unknown section or key, or a bad value.
    """
    config = ClusterConfig()
    layers: list[tuple[Mapping[str, Any], str]] = (
        [*file_layers(Path(path))] if path is not None else [])
    if values is not None:
        layers.append((values, "resolved config"))
    for layer, where in layers:
        for section, table in layer.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where}: {section!r} must be a [section] table")
            for key, value in table.items():
                config = _apply(config, section, key, value, f"{where} [{section}] {key}",
                                where)
    env = os.environ if environ is None else environ
    if env.get("REDIS_URL"):
        config = _apply(config, "redis", "url", env["REDIS_URL"], "REDIS_URL")
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and "_" in name[len(ENV_PREFIX):]:
            section, _, key = name[len(ENV_PREFIX):].lower().partition("_")
            if section in get_type_hints(ClusterConfig):
                config = _apply(config, section, key, value, f"environment {name}")
    for item in overrides:
        dotted, sep, value = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: use section.key=value, e.g. memup.lanes=32")
        config = _apply(config, section, key, value, f"--set {dotted}")
    check(config)
    return config

