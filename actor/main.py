"""``memup actor``: one actor process, from config to a running env loop."""

from __future__ import annotations

import logging
import threading
import time
import zlib

import gymnasium
import torch

from actor.loop import ActorLoop, EnvFailure
from actor.policy import ActingPolicy
from actor.publish import FragmentPublisher
from common.config import ClusterConfig
from common.keys import consumer_name
from common.metrics import ActorMetrics, serve_metrics
from common.models import POLICY
from common.redis_io import connect
from common.status import start_status
from common.watcher import WeightsWatcher
from tasks.registry import task_for

log = logging.getLogger(__name__)


def run_actor(config: ClusterConfig, replica: int | str, stop: threading.Event,
              max_steps: int | None = None) -> int:
    """Runs one actor until ``stop`` is set; returns the process exit code.

    Exit codes: 0 stopped on request, 3 an env kept crashing.
    """
    torch.set_num_threads(max(1, config.run.threads))
    name = consumer_name("actor", replica)
    task = task_for(config)
    metrics = ActorMetrics(env=config.task.env)
    port = serve_metrics(metrics.registry, config.actor.metrics_port, config.run.metrics_addr)
    r = connect(config.redis.url, client_name=name)
    publisher = FragmentPublisher(r, config, metrics)
    publisher.start()
    def count_error(kind: str) -> None:
        metrics.redis_errors_total.labels(kind=kind).inc()

    watcher = WeightsWatcher(connect(config.redis.url), config.run.name, POLICY,
                             config.actor.weights_poll_s, on_error=count_error)
    watcher.start()
    seed = config.run.seed * 7919 + zlib.crc32(name.encode())  # distinct per replica name
    policy = ActingPolicy(config, config.actor.envs, seed)
    swap_envs = task.swaps_data_envs

    def env_for(slot: int) -> gymnasium.Env:
        return task.make_env(slot, data_policy=swap_envs and policy.version == 0)

    loop = ActorLoop(config, name, env_for, task, policy, publisher, metrics, stop)
    started = time.monotonic()

    def status() -> dict[str, float]:
        elapsed = max(time.monotonic() - started, 1e-9)
        return {"env_steps": loop.env_steps, "steps_per_s": loop.env_steps / elapsed,
                "episodes": loop.episodes_done, "successes": loop.successes,
                "policy_version": policy.version, "queue": publisher.queued,
                "metrics_port": port}

    beat = start_status(r, config.run.name, name, status)

    def refresh_weights() -> None:
        found = watcher.take()
        if found is not None:
            first = policy.version == 0
            policy.load(*found)
            if first and swap_envs:  # the data policy's env is not the policy's
                log.info("%s: first policy weights; replacing the data-collection envs", name)
                loop.replace_envs()
            metrics.policy_version.set(found[0])

    log.info("%s: %d %s envs, metrics on :%d", name, loop.n, task.name, port)
    code = 0
    try:
        loop.run(max_steps, on_step=refresh_weights)
    except EnvFailure as exc:
        log.error("%s: %s; exiting so the supervisor restarts the actor", name, exc)
        code = 3
    finally:
        watcher.stop()
        publisher.close()
        beat.stop()
    log.info("%s: stopped after %d env steps, %d episodes", name, loop.env_steps,
             loop.episodes_done)
    return code
