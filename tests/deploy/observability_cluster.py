"""Helpers of the observability deploy tests (see test_observability.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common.config import load_config
from common.embedded_redis import EmbeddedRedis, free_port
from common.redis_io import connect
from common.status import read_statuses
from tests.deploy.observability_support import (
    CLUSTER_CONFIG,
    PROM_TIMEOUT_S,
    ROOT,
    RULES,
    require,
)

# ------------------------------------------------------------------------ live cluster


@dataclass
class Cluster:
    ports: dict[str, int]  #: replica name (actor-0, ..., supervisor) -> metrics port
    stderr: Path

    def scrape(self, name: str) -> str:
        url = f"http://127.0.0.1:{self.ports[name]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    def job(self, name: str) -> str:
        return name.split("-")[0]

    def tail(self) -> str:
        """The end of `memup up`'s stderr (restarted roles are logged there)."""
        return "\n`memup up` stderr:\n" + self.stderr.read_text(errors="replace")[-2000:]


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `memup up` stops its roles (learner checkpoints)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`memup up` on T-Maze-LNR-20 against a Redis of our own, until the module ends.

    Ready once every replica reports its metrics port and the learner has published its
    first detector weights. Phase I is kept from ending (target accuracy above 1) so the
    roles keep producing while the tests look; ``--max-minutes`` stops a cluster this
    fixture failed to stop.
    """
    tmp = tmp_path_factory.mktemp("observability")
    config = load_config(CLUSTER_CONFIG)
    expected = {"learner-0"} | {f"scorer-{i}" for i in range(config.scorer.replicas)} | {
        f"actor-{i}" for i in range(config.actor.replicas)}
    redis = EmbeddedRedis().start()
    stderr = tmp / "up.stderr"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "up", "--config", str(CLUSTER_CONFIG),
                 "--set", f"run.dir={tmp}", "--set", "memup.target_accuracy=1.01",
                 "--max-minutes", "3"],
                cwd=ROOT, env={**os.environ, "REDIS_URL": redis.url}, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)
        r = connect(redis.url)
        ports: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"memup up exited with {proc.returncode}:\n"
                            f"{stderr.read_text()[-3000:]}")
            statuses = read_statuses(r, config.run.name)
            ports = {name: int(s["metrics_port"]) for name, s in statuses.items()
                     if "metrics_port" in s}
            found = re.search(r"supervisor metrics .* on http://127\.0\.0\.1:(\d+)/metrics",
                              stderr.read_text())
            # Training has begun and published detector weights: the loss and weights
            # series exist, so the live checks see every label the dashboards group by.
            updates = statuses.get("learner-0", {}).get("memup_updates", 0)
            if expected <= set(ports) and found and updates >= config.memup.publish_every:
                ports["supervisor"] = int(found[1])
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the cluster did not report every role within 120 s (have {ports}); "
                        f"stderr:\n{stderr.read_text()[-3000:]}\nlogs in {tmp}")
        r.close()
        yield Cluster(ports, stderr)
    finally:
        if proc is not None:
            _stop(proc, timeout=90)
        redis.stop()


# --------------------------------------------------------------------- real Prometheus


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error
            return json.loads(exc.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def run_prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Prometheus]:
    """The Debian prometheus server scraping the live roles every second, with rules.yml."""
    binary = require("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    jobs: dict[str, list[str]] = {}
    for name, port in cluster.ports.items():
        jobs.setdefault(cluster.job(name), []).append(f"127.0.0.1:{port}")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in sorted(jobs.items())],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    log = tmp / "prometheus.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # the free port may be taken before prometheus binds it
            port = free_port()
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, f"--config.file={tmp / 'prometheus.yml'}",
                     f"--storage.tsdb.path={tmp / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            server = Prometheus(port)
            deadline = time.monotonic() + PROM_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{server.base}/-/ready", timeout=2) as ready:
                        if ready.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            if proc.poll() is None:
                break
            if "address already in use" not in log.read_text():
                break
        assert proc is not None and proc.poll() is None, \
            f"prometheus did not start:\n{log.read_text()[-3000:]}"
        # Data to query: env steps counted by every actor over at least two scrapes each.
        # On a busy 2-core machine one actor's scrape can time out while the other's lands,
        # so waiting for the sum alone let a test see one actor's rate and not the other's.
        actors = sum(1 for name in cluster.ports if name.startswith("actor-"))
        deadline = time.monotonic() + PROM_TIMEOUT_S
        while time.monotonic() < deadline:
            rates = server.query("rate(memup_actor_env_steps_total[15s]) > 0")
            if len({s["metric"]["instance"] for s in rates}) == actors:
                break
            time.sleep(1)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
