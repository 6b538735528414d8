"""A learner resumed on a fresh Redis carries its step counts over, so actors produce again.

Phase I's rate limit lets actors run ``warmup_episodes`` episodes ahead of what the learner
has trained on. After a restart on an empty Redis the run's env steps come back from the
checkpoint; the steps trained on must come back with them, or the actors would wait for
training that waits for their episodes (found in a Two-Colors run stopped and resumed).
"""

from __future__ import annotations

from types import SimpleNamespace

import redis

from actor.publish import FragmentPublisher
from common import keys
from common.config import load_config
from common.metrics import ActorMetrics
from learner.train import Learner


def test_a_resumed_learner_lets_the_actors_produce_again(redis_client: redis.Redis) -> None:
    config = load_config(overrides=["run.name=resumed", "task.length=100",
                                    "memup.warmup_episodes=10", "memup.replay_ratio=2.0"])
    publisher = FragmentPublisher(redis_client, config, ActorMetrics(env="tmaze"))
    trained = 600_000  # the checkpoint's counts: 2 x 300,000 produced, trained on twice
    learner = SimpleNamespace(r=redis_client, config=config, memup_steps=trained)
    Learner.resume_step_counts(learner, 300_000)  # type: ignore[arg-type]
    control = redis_client.hgetall(keys.control_key("resumed"))
    assert int(control[b"env_steps"]) == 300_000 and int(control[b"trained_steps"]) == trained
    publisher._check_backlog()
    assert not publisher.paused
    # A Redis that outlived the learner keeps its own (newer) counts.
    redis_client.hset(keys.control_key("resumed"), mapping={"env_steps": 400_000,
                                                            "trained_steps": 100})
    Learner.resume_step_counts(learner, 300_000)  # type: ignore[arg-type]
    control = redis_client.hgetall(keys.control_key("resumed"))
    assert int(control[b"env_steps"]) == 400_000 and int(control[b"trained_steps"]) == 100
    publisher._check_backlog()
    assert publisher.paused  # 400,000 produced against 100 / 2 + 10 x 100 allowed
