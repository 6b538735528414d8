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

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import zmq
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.deploy.compose_cluster import (
    Cluster,
    _launch_redis,
    _snapshot,
    _stop,
    make_keys,
    run_cluster,
    volume_dir,
)
from tests.deploy.compose_support import (
    COMPOSE,
    GPU_OVERRIDE,
    PROGRESS_TIMEOUT_S,
    ROLES,
    ROOT,
    SHORT_CONFIG,
    SHORT_RUN,
    metric_values,
    named_volumes,
    resolved,
    run_compose,
    volume_names,
)

# -- 1. the compose files validate ------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from run_cluster(tmp_path_factory)


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
    # One run name for Redis's ACL and every role.
    runs = {services[name]["environment"]["MEMUP_RUN_NAME"] for name in ("redis", *ROLES)}
    assert runs == {"tmaze-lnr-1000"}, runs
    # CURVE on the segment feed: each side mounts its own half of the keys read-only.
    keys = services["keys"]
    assert keys["network_mode"] == "none" and keys["restart"] == "no"
    for role, volume in (("scorer", "curve-scorer"), ("learner", "curve-learner")):
        svc = services[role]
        where = svc["environment"]["MEMUP_ZMQ_CURVE_KEYS"]
        assert volume_names(svc)[where] == volume, role
        assert any(str(v).startswith(f"{volume}:{where}:ro") for v in svc["volumes"]), role
        assert volume in volume_names(keys).values()
        assert svc["depends_on"]["keys"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "MEMUP_ZMQ_CURVE_KEYS" not in services["actor"]["environment"]  # Redis only
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
    # The control state is the learner's; the episodes stream is only appended to.
    with pytest.raises(refused):
        actor.hset(run + "control", "phase", "2")
    with pytest.raises(refused):
        actor.expire(run + "episodes", 1)
    with pytest.raises(refused):
        actor.delete(run + "episodes")
    # Another tenant's keys, another run's included: nobody's.
    with pytest.raises(refused):
        actor.rpush("other:frag:x", b"x")
    with pytest.raises(refused):
        actor.rpush("memup:another-run:frag:x", b"x")
    with pytest.raises(refused):
        scorer.hget("memup:another-run:control", "phase")
    with pytest.raises(refused):
        learner.get(run + "frag:x")
    # The default user is off; a wrong password is refused.
    with pytest.raises(redis.exceptions.AuthenticationError):
        cluster.client("default", "any-password").ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        cluster.client("actor", "wrong-password-123").ping()
    for client in (actor, scorer, learner):
        client.close()


def test_the_segment_feed_takes_only_the_learner_with_the_keys_service_keys(
        cluster: Cluster) -> None:
    """The keys service gave each side its half (kept on a second start); the learner,
    holding its half, trains (test above); a peer without CURVE gets nothing and counts."""
    scorer, learner = volume_dir(cluster, "curve-scorer"), volume_dir(cluster, "curve-learner")
    assert sorted(str(p.relative_to(scorer)) for p in scorer.rglob("*") if p.is_file()) == [
        "clients/learner.key", "server.key_secret"]
    assert sorted(p.name for p in learner.iterdir()) == ["learner.key_secret", "server.key"]
    for secret in (scorer / "server.key_secret", learner / "learner.key_secret"):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"
    before = {p: p.read_bytes() for p in (*scorer.rglob("*.key*"), *learner.iterdir())}
    services = resolved(MEMUP_CONFIG=SHORT_CONFIG, MEMUP_RUN_NAME=SHORT_RUN)["services"]
    again = make_keys(cluster, services["keys"], cluster.tmp / "bin")
    assert "kept" in again and "new" in cluster.keys_output
    assert {p: p.read_bytes() for p in before} == before, "a restart replaced the keys"

    port = int(cluster.env["scorer"]["MEMUP_SCORER_PORT"])
    metrics = int(cluster.env["scorer"]["MEMUP_SCORER_METRICS_PORT"])
    counted = metric_values(metrics)["memup_scorer_auth_failures_total"]
    ctx = zmq.Context()
    plain = ctx.socket(zmq.DEALER)
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(f"tcp://127.0.0.1:{port}")
    try:
        plain.send(b"a plaintext request", flags=zmq.NOBLOCK)
        assert not plain.poll(2000), "a peer without CURVE got an answer"
    finally:
        plain.close(0)
        ctx.term()
    assert metric_values(metrics)["memup_scorer_auth_failures_total"] > counted, (
        "the scorer did not count the refused handshake (scorer/serve.py must pass "
        "on_denied=metrics.auth_failures_total.inc to common.zmq_io.router)")


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
