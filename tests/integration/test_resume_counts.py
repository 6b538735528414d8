"""The run's state in Redis survives its loss: counts carried over, merged, never restarted.

Phase I's rate limit lets actors run ``warmup_episodes`` episodes ahead of what the learner
has trained on. After a restart on an empty Redis, or after Redis lost its data mid-run, the
learner puts the phase, the steps trained on and the env steps back — the env steps *added*
to what actors counted meanwhile (they race the learner and ``INCRBY`` from zero), so the
count continues and the actors produce again.
"""

from __future__ import annotations

import threading

import redis

from actor.publish import FragmentPublisher
from common import keys
from common.config import load_config
from common.ledger import Ledger
from common.metrics import ActorMetrics, LearnerMetrics
from learner.run_state import RunState

CONFIG = load_config(overrides=["run.name=resumed", "task.length=100",
                                "memup.warmup_episodes=10", "memup.replay_ratio=2.0"])


def _state(r: redis.Redis, seen: int) -> RunState:
    state = RunState(CONFIG, r, LearnerMetrics(), threading.Event(), Ledger(None, "learner"))
    state.env_steps_seen = seen  # as a checkpoint restores it
    return state


def test_a_resumed_learner_carries_its_counts_onto_a_fresh_redis(
        redis_client: redis.Redis) -> None:
    publisher = FragmentPublisher(redis_client, CONFIG, ActorMetrics(env="tmaze"))
    redis_client.incrby(keys.env_steps_key("resumed"), 5_000)  # actors were quicker
    publisher._check_backlog()
    assert publisher.paused  # 5,000 produced against 10 x 100 allowed before training
    state = _state(redis_client, 300_000)
    assert state.ensure(phase=1, trained_steps=700_000)
    control = redis_client.hgetall(keys.control_key("resumed"))
    assert int(redis_client.get(keys.env_steps_key("resumed"))) == 305_000
    assert control[b"phase"] == b"1" and int(control[b"trained_steps"]) == 700_000
    assert state.env_steps_seen == 305_000
    publisher._check_backlog()
    assert not publisher.paused  # 305,000 against 700,000 / 2 + 1,000


def test_a_redis_that_kept_its_data_keeps_its_counts(redis_client: redis.Redis) -> None:
    redis_client.hset(keys.control_key("resumed"), mapping={"phase": 2, "trained_steps": 100})
    redis_client.set(keys.env_steps_key("resumed"), 400_000)
    state = _state(redis_client, 300_000)
    assert not state.ensure(phase=2, trained_steps=50, force=True)
    assert int(redis_client.get(keys.env_steps_key("resumed"))) == 400_000
    assert state.env_steps_seen == 400_000  # the newer count is read, not overwritten
    assert redis_client.hget(keys.control_key("resumed"), "trained_steps") == b"100"


def test_data_lost_mid_run_is_put_back_once(redis_client: redis.Redis) -> None:
    state = _state(redis_client, 0)
    assert state.ensure(phase=2, trained_steps=0, force=True)  # a fresh run: nothing to add
    redis_client.incrby(keys.env_steps_key("resumed"), 120_000)
    assert not state.ensure(phase=2, trained_steps=0, force=True)
    assert state.env_steps_seen == 120_000
    redis_client.flushall()
    redis_client.incrby(keys.env_steps_key("resumed"), 3_000)  # counted again from zero
    assert state.ensure(phase=2, trained_steps=7, force=True)
    assert int(redis_client.get(keys.env_steps_key("resumed"))) == 123_000
    assert redis_client.hget(keys.control_key("resumed"), "phase") == b"2"
    assert not state.ensure(phase=2, trained_steps=7, force=True)  # once, not on every check
    assert int(redis_client.get(keys.env_steps_key("resumed"))) == 123_000
