"""One `docker compose` project of the real stack under test, and what the tests do to it.

The project is docker-compose.yml + tests/cluster/compose.offline.yml (local images, no
Grafana) + tests/cluster/compose.test.yml (the episode ledger in a host folder, Redis also
published on one address of this machine, Prometheus on a free loopback port, the
learner's PPO target and budget as variables). Every container, network and volume is the
project's own and removed by :meth:`Stack.down`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.ledger import read_events

REPO = Path(__file__).resolve().parents[2]
FILES = ("docker-compose.yml", "tests/cluster/compose.offline.yml",
         "tests/cluster/compose.test.yml")
CONFIG = "configs/up_tmaze_lnr_20.toml"
RUN = "tmaze-lnr-20"
LEARNER_EVENTS = ("trained", "sampled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate: Callable[[], Any], timeout_s: float, what: str, every: float = 1.0) -> Any:
    """``predicate()``'s first truthy value; AssertionError naming ``what`` on timeout."""
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every)


class Stack:
    """A compose project of the stack; ``env`` holds its variables (the test's `.env`)."""

    def __init__(self, project: str, folder: Path, images: dict[str, str],
                 redis_publish: str, **env: str) -> None:
        self.project = project
        self.folder = folder
        self.ledger = folder / "ledger"
        self.ledger.mkdir(parents=True, exist_ok=True)
        self.ledger.chmod(0o777)  # the roles run as uid 10001
        self.prometheus_port = free_port()
        self.passwords = {role: secrets.token_hex(16) for role in ("actor", "scorer", "learner")}
        self.env = {
            "ACTOR_REDIS_PASSWORD": self.passwords["actor"],
            "SCORER_REDIS_PASSWORD": self.passwords["scorer"],
            "LEARNER_REDIS_PASSWORD": self.passwords["learner"],
            "GRAFANA_ADMIN_PASSWORD": "unused-offline",
            "MEMUP_CONFIG": CONFIG, "MEMUP_RUN_NAME": RUN,
            "MEMUP_IMAGE": images["memup"], "REDIS_IMAGE": images["redis"],
            "PROMETHEUS_IMAGE": images["prometheus"],
            "TEST_LEDGER_DIR": str(self.ledger), "TEST_REDIS_PUBLISH": redis_publish,
            "TEST_PROMETHEUS_PORT": str(self.prometheus_port), **env}
        self.notes: list[tuple[float, str]] = []
        self.started = 0.0

    # -- compose ------------------------------------------------------------------------

    def compose(self, *args: str, check: bool = True, timeout: float = 300,
                **env: str) -> subprocess.CompletedProcess:
        argv = ["docker", "compose", "-p", self.project]
        for f in FILES:
            argv += ["-f", f]
        full = {k: v for k, v in os.environ.items()
                if not k.startswith(("MEMUP_", "TEST_")) and k != "REDIS_URL"}
        proc = subprocess.run([*argv, *args], cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, env={**full, **self.env, **env})
        if check and proc.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc

    def up(self, *args: str) -> None:
        self.started = self.started or time.time()
        self.compose("up", "-d", "--no-build", *args)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "20", check=False)

    def containers(self, service: str | None = None, every: bool = False) -> list[dict[str, Any]]:
        """``docker compose ps`` records (running ones unless ``every``)."""
        args = ["ps", "--format", "json", *(["-a"] if every else []),
                *([service] if service else [])]
        out = self.compose(*args).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container(self, service: str, index: int = 0) -> str:
        names = sorted(c["Name"] for c in self.containers(service))
        assert names, f"no running {service} container"
        return names[index]

    def inspect(self, name: str, fmt: str) -> str:
        return subprocess.run(["docker", "inspect", "-f", fmt, name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def healthy(self) -> dict[str, str]:
        """Service -> State / Health of each container (keys: its exit code)."""
        out = {}
        for c in self.containers(every=True):
            state = c.get("Health") or c.get("State")
            if c["Service"] == "keys":
                state = f"exited {c.get('ExitCode')}"
            out[c["Name"]] = state
        return out

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def learner_said(self, text: str) -> bool:
        return text in self.logs("learner")

    # -- faults -------------------------------------------------------------------------

    def note(self, what: str) -> float:
        t = time.time()
        self.notes.append((t, what))
        return t

    def kill9(self, service: str, index: int = 0) -> tuple[float, str]:
        """SIGKILL of the container's main process by its host PID (as the OOM killer
        would): docker sees a crash, and `restart: unless-stopped` restarts it."""
        name = self.container(service, index)
        restarts = int(self.inspect(name, "{{.RestartCount}}"))
        pid = int(self.inspect(name, "{{.State.Pid}}"))
        os.kill(pid, signal.SIGKILL)
        t = self.note(f"kill -9 {service} (host pid {pid})")
        wait(lambda: int(self.inspect(name, "{{.RestartCount}}")) > restarts
             and self.inspect(name, "{{.State.Running}}") == "true", 60,
             f"docker to restart {name}")
        return t, name

    # -- observations -------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.ledger)

    def trained_after(self, t: float, fresh: bool = False) -> float | None:
        """Seconds from ``t`` to the learner's first training after it (``fresh``: on an
        episode produced after ``t``); None: not yet."""
        events = self.events()
        born = {e["ep"]: e["t"] for e in events if e["e"] == "produced"}
        for e in events:
            if e["t"] > t and e["e"] in LEARNER_EVENTS and (
                    not fresh or born.get(e.get("ep"), 0.0) > t):
                return round(e["t"] - t, 2)
        return None

    def prometheus(self, path: str, **params: Any) -> Any:
        url = f"http://127.0.0.1:{self.prometheus_port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=20) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": at} if at else {})
        return self.prometheus("/api/v1/query", **params)["result"]

    def actor_targets(self) -> dict[str, str]:
        """instance -> health of Prometheus's active actor targets."""
        targets = self.prometheus("/api/v1/targets", state="active")["activeTargets"]
        return {t["labels"]["instance"]: t["health"] for t in targets
                if t["labels"]["job"] == "actor"}

    def actor_rates(self, window: str = "30s") -> dict[str, float]:
        """instance -> env steps/s over ``window``, per actor target."""
        rows = self.query(f"sum by (instance) (rate(memup_actor_env_steps_total[{window}]))")
        return {r["metric"]["instance"]: float(r["value"][1]) for r in rows}
