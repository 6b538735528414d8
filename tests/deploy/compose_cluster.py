"""Helpers of the compose deploy tests (see test_compose.py)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.deploy.compose_support import (
    ENV_EXAMPLE,
    PROGRESS_TIMEOUT_S,
    ROLES,
    ROOT,
    SHORT_CONFIG,
    SHORT_RUN,
    bind_mounts,
    dockerfile_env,
    free_port,
    non_loopback_address,
    read_env_file,
    redis_server_7,
    resolved,
    translate,
    volume_names,
)

# -- 3. the compose services, run as local processes ------------------------------------


@dataclass
class Cluster:
    tmp: Path
    redis_port: int
    admin_password: str
    passwords: dict[str, str]
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> its environment
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    remote_address: str | None = None
    redis_argv: list[str] = field(default_factory=list)  # how the redis service starts here
    redis_env: dict[str, str] = field(default_factory=dict)
    redis_check: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    acl_log: list[Any] = field(default_factory=list)
    keys_output: str = ""  # what the keys service said on its first run

    def client(self, user: str, password: str, host: str = "127.0.0.1") -> redis.Redis:
        return redis.Redis(host=host, port=self.redis_port, username=user, password=password,
                           socket_timeout=5, protocol=2, retry=Retry(NoBackoff(), 0))

    def admin(self) -> redis.Redis:
        return self.client("memup-test-admin", self.admin_password)

    def tails(self) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {name} (last lines) ---\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(parts)


def _start_redis(cluster: Cluster, service: dict[str, Any], server: str) -> None:
    mounts = bind_mounts(service)
    conf = mounts["/usr/local/etc/redis/redis.conf"].read_text()
    bind = "127.0.0.1" + (f" {cluster.remote_address}" if cluster.remote_address else "")
    data = cluster.tmp / "redis-data"
    data.mkdir()
    for directive, value in (("bind", bind), ("port", str(cluster.redis_port)),
                             ("dir", str(data))):
        conf, n = re.subn(rf"^{directive} .*$", f"{directive} {value}", conf, flags=re.M)
        assert n == 1, f"redis.conf has no single `{directive}` line to adapt"
    (cluster.tmp / "redis.conf").write_text(conf)
    # The compose ACL users, plus an admin user of this test's own, to read the ACL log.
    template = mounts["/usr/local/etc/redis/users.acl"].read_text()
    (cluster.tmp / "users.acl").write_text(
        template + f"user memup-test-admin on >{cluster.admin_password} ~* &* +@all\n")
    env = {**os.environ, **service.get("environment", {}),
           "REDIS_CONF": str(cluster.tmp / "redis.conf"),
           "ACL_TEMPLATE": str(cluster.tmp / "users.acl"),
           "ACL_RUN_DIR": str(cluster.tmp / "redis-run"), "REDIS_SERVER": server,
           "REDIS_PORT": str(cluster.redis_port),
           "PATH": f"{Path(server).parent}:{os.environ.get('PATH', '')}"}
    cluster.redis_argv = translate(service["command"], mounts)
    cluster.redis_env = env
    # The compose healthcheck itself decides when Redis is up.
    cluster.redis_check = translate(
        [a for a in service["healthcheck"]["test"] if a not in ("CMD", "CMD-SHELL")], mounts)
    _launch_redis(cluster)


def _launch_redis(cluster: Cluster) -> None:
    log = cluster.logs["redis"] = cluster.tmp / "redis.log"
    with log.open("a") as out:
        cluster.procs["redis"] = subprocess.Popen(cluster.redis_argv, env=cluster.redis_env,
                                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while subprocess.run(cluster.redis_check, env=cluster.redis_env, capture_output=True,
                         timeout=10).returncode != 0:
        assert cluster.procs["redis"].poll() is None, "redis exited\n" + cluster.tails()
        assert time.monotonic() < deadline, "redis never became healthy\n" + cluster.tails()
        time.sleep(0.2)


def volume_dir(cluster: Cluster, name: str) -> Path:
    """The local directory standing for the named volume ``name`` (shared by services)."""
    local = cluster.tmp / "volumes" / name
    local.mkdir(parents=True, exist_ok=True)
    return local


def _local_paths(cluster: Cluster, service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> local path of every mount of a service (volumes by their name)."""
    return {**bind_mounts(service), **{target: volume_dir(cluster, name)
                                       for target, name in volume_names(service).items()}}


def make_keys(cluster: Cluster, service: dict[str, Any], shim: Path) -> str:
    """Runs the one-shot keys service's own entrypoint and command; returns its output."""
    argv = translate([*service["entrypoint"], *service["command"]],
                     _local_paths(cluster, service))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MEMUP_")},
           **dockerfile_env(), "PATH": f"{shim}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"the keys service failed: {proc.stderr}"
    return proc.stdout


def _role_env(cluster: Cluster, role: str, service: dict[str, Any], shim: Path
              ) -> dict[str, str]:
    """The service's environment (over the image's ENV), adapted to this machine."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MEMUP_") and k != "REDIS_URL"}
    env = {**base, **dockerfile_env(), **{k: str(v) for k, v in
                                          service.get("environment", {}).items()}}
    env["PATH"] = f"{shim}:{base.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    url = env["REDIS_URL"]
    assert "@redis:6379/" in url, url
    env["REDIS_URL"] = url.replace("@redis:6379/", f"@127.0.0.1:{cluster.redis_port}/")
    assert env["MEMUP_RUN_METRICS_ADDR"] == "0.0.0.0"
    env["MEMUP_RUN_METRICS_ADDR"] = "127.0.0.1"  # the test does not listen on the network
    env[f"MEMUP_{role.upper()}_METRICS_PORT"] = str(free_port())
    if role == "scorer":
        assert env["MEMUP_SCORER_BIND_HOST"] == "0.0.0.0"
        env["MEMUP_SCORER_BIND_HOST"] = "127.0.0.1"
        env["MEMUP_SCORER_PORT"] = str(free_port())
        env["MEMUP_SCORER_ADVERTISE_HOST"] = "127.0.0.1"  # what "the container address" is here
    for target, name in volume_names(service).items():  # volumes: dirs of the temp dir
        local = volume_dir(cluster, name)
        env = {k: str(local) + v[len(target):] if v == target or v.startswith(target + "/")
               else v for k, v in env.items()}
    env.setdefault("MEMUP_RUN_DIR", str(cluster.tmp / "runs"))  # actors, scorers: unused
    return env


def _phase_one_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / SHORT_RUN / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if record.get("phase") == 1 and "update" in record:
            records.append(record)
    return records


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = redis_server_7()
    services = resolved(MEMUP_CONFIG=SHORT_CONFIG, MEMUP_RUN_NAME=SHORT_RUN)["services"]
    tmp = tmp_path_factory.mktemp("compose")
    passwords = {role: read_env_file(ENV_EXAMPLE)[f"{role.upper()}_REDIS_PASSWORD"]
                 for role in ROLES}
    c = Cluster(tmp=tmp, redis_port=free_port(), admin_password=secrets.token_hex(16),
                passwords=passwords, remote_address=non_loopback_address())
    # `memup` in the image is the console script; here it is this checkout's.
    shim = tmp / "bin"
    shim.mkdir()
    (shim / "memup").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cli.main "$@"\n')
    (shim / "memup").chmod(0o755)
    try:
        _start_redis(c, services["redis"], server)
        c.keys_output = make_keys(c, services["keys"], shim)  # before scorer and learner
        # Scorer and learner first, then one actor: `scale: 2` actors would share this
        # machine's host name as `--replica auto`, where containers each have their own.
        for role in ("scorer", "learner", "actor"):
            svc = services[role]
            assert svc["command"][0] == role
            c.env[role] = _role_env(c, role, svc, shim)
            c.logs[role] = tmp / f"{role}.log"
            with c.logs[role].open("w") as out:
                c.procs[role] = subprocess.Popen(
                    ["sh", str(ROOT / "deploy" / "entrypoint.sh"), *svc["command"]],
                    cwd=ROOT, env=c.env[role], stdout=out, stderr=subprocess.STDOUT)
        run_dir = Path(c.env["learner"]["MEMUP_RUN_DIR"])
        deadline = time.monotonic() + PROGRESS_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, proc in c.procs.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}\n" + c.tails()
            c.records = _phase_one_records(run_dir)
            if len(c.records) >= 2:
                break
            time.sleep(1.0)
        # Before any test provokes a refusal on purpose: what the run itself was refused.
        admin = c.admin()
        c.acl_log = admin.acl_log()
        admin.close()
        yield c
    finally:
        _stop({k: v for k, v in c.procs.items() if k != "redis"})
        _stop({k: v for k, v in c.procs.items() if k == "redis"})


def _snapshot(r: redis.Redis) -> dict[str, Any]:
    """What a restart must keep: every key of the run with its type and size, the control
    hash, the weights' versions and digests."""
    run = f"memup:{SHORT_RUN}:"
    sizes = {"string": r.strlen, "list": r.llen, "hash": r.hlen, "zset": r.zcard,
             "stream": r.xlen}
    keys = {}
    for key in sorted(r.scan_iter(match=run + "*", count=1000)):
        kind = r.type(key).decode()
        if not key.startswith((run + "status:").encode()) and kind in sizes:
            keys[key.decode()] = (kind, sizes[kind](key))
    weights = {name: r.hmget(run + f"weights:{name}", ["version", "sha256"])
               for name in ("detector", "policy")}
    return {"keys": keys, "control": r.hgetall(run + "control"), "weights": weights,
            "groups": [(g["name"], g["pending"], g["last-delivered-id"])
                       for g in r.xinfo_groups(run + "episodes")]}
