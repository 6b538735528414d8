"""Runs every role of a local cluster as a child process and keeps them running.

A crashed role is restarted with backoff (and counted); the learner finishing (exit 0)
ends the run. On stop, children get SIGTERM (the learner checkpoints and writes its
curves), then SIGKILL after a grace period. Each child logs to ``<run>/logs/<name>.log``.
The embedded Redis is kept running the same way (:class:`RedisKeeper`): on its old port,
with its old password and data dir, so the ``REDIS_URL`` the children got stays valid.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.embedded_redis import EmbeddedRedis
from common.lifecycle import Backoff
from common.metrics import SupervisorMetrics

log = logging.getLogger(__name__)

GRACE_S = 30.0
"""How long a stopping child may take (the learner writes a checkpoint) before SIGKILL."""
STABLE_S = 60.0
"""A child that ran this long before crashing restarts without accumulated backoff."""
REDIS_LOAD_S = 120.0
"""How long a restarted Redis may take to load its AOF before the try counts as failed."""


@dataclass
class Child:
    """One supervised role process."""

    name: str  #: e.g. ``actor-1``
    role: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    not_before: float = 0.0  #: restart time after a crash (backoff)
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=30.0))


class Supervisor:
    """Starts, watches, restarts and stops the children of one run.

    Args:
        children: the roles to run.
        env: the children's environment (carries ``REDIS_URL``).
        metrics: restart counters and running gauges.
    """

    def __init__(self, children: list[Child], env: dict[str, str],
                 metrics: SupervisorMetrics) -> None:
        self.children = children
        self.env = env
        self.metrics = metrics
        self.finished: Child | None = None

    def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as out:
            child.process = subprocess.Popen(
                child.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True)  # Ctrl-C reaches us only; we stop children in order
        child.started = time.monotonic()
        self.metrics.components_running.labels(role=child.role).inc()

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)
            log.info("started %s (pid %d), log %s", child.name, child.process.pid,  # type: ignore[union-attr]
                     child.log_path)

    def poll(self) -> None:
        """Restarts crashed children whose backoff has passed; notes a finished learner."""
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                child.process = None
                self.metrics.components_running.labels(role=child.role).dec()
                if child.role == "learner" and code == 0:
                    self.finished = child
                    continue
                if now - child.started > STABLE_S:
                    child.backoff.reset()
                child.not_before = now + child.backoff.next()
                log.warning("%s exited with code %s; restarting in %.1fs (see %s)", child.name,
                            code, child.not_before - now, child.log_path)
            if child.process is None and self.finished is None and now >= child.not_before:
                child.restarts += 1
                self.metrics.component_restarts_total.labels(role=child.role).inc()
                self._spawn(child)

    def stop(self) -> None:
        """SIGTERM to every child (learner last, so actors stop producing first), then wait."""
        order = sorted(self.children, key=lambda c: {"actor": 0, "scorer": 1}.get(c.role, 2))
        for child in order:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for child in order:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", child.name, GRACE_S)
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()


class RedisKeeper:
    """Restarts the embedded Redis when its process dies, with capped backoff.

    Args:
        server: the started server (its port, password and data dir are reused).
        metrics: ``component_restarts_total{role="redis"}`` counts the restarts.
        backoff: delays between a death (or a failed start) and the next start.
    """

    def __init__(self, server: EmbeddedRedis, metrics: SupervisorMetrics,
                 backoff: Backoff | None = None) -> None:
        self.server, self.metrics = server, metrics
        self.backoff = backoff or Backoff(base=0.5, cap=15.0)
        self.restarts = 0
        self.down_since: float | None = None
        self.exit_code: int | None = None
        self.not_before = 0.0
        self.up_since = time.monotonic()
        metrics.component_restarts_total.labels(role="redis")  # exported at 0 from the start
        metrics.components_running.labels(role="redis").set(1)

    def poll(self) -> None:
        """Starts the server again if it died and its backoff has passed (blocks while it
        loads its AOF)."""
        if self.server.pid is not None:
            return
        now = time.monotonic()
        if self.down_since is None:
            self.down_since, self.exit_code = now, self.server.returncode
            self.metrics.components_running.labels(role="redis").set(0)
            if now - self.up_since > STABLE_S:
                self.backoff.reset()
            self.not_before = now + self.backoff.next()
        if now < self.not_before:
            return
        try:
            self.server.restart(timeout=REDIS_LOAD_S)
        except RuntimeError as exc:
            delay = self.backoff.next()
            self.not_before = time.monotonic() + delay
            log.warning("restarting redis-server on port %d failed (%s); next try in %.1fs",
                        self.server.port, str(exc).splitlines()[0], delay)
            return
        self.restarts += 1
        self.metrics.component_restarts_total.labels(role="redis").inc()
        self.metrics.components_running.labels(role="redis").set(1)
        log.warning("redis-server on 127.0.0.1:%d exited (code %s); restarted it after %.1fs "
                    "with its data from %s (restart %d)", self.server.port, self.exit_code,
                    time.monotonic() - self.down_since, self.server.data_dir, self.restarts)
        self.down_since, self.up_since = None, time.monotonic()


def role_argv(role: str, replica: int | None, config_path: Path | None,
              overrides: list[str]) -> list[str]:
    """The command line of one role process (same config file and overrides as ``up``)."""
    argv = [sys.executable, "-m", "cli.main", role]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    for item in overrides:
        argv += ["--set", item]
    if replica is not None:
        argv += ["--replica", str(replica)]
    return argv
