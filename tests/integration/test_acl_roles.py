"""The Redis ACL users of the deployments (deploy/redis/users.acl, rendered by start.sh)
against a real redis-server >= 7.0 loading the rendered file.

1. Each role's real code paths, each connected as that role's user, run a run's Redis
   traffic: the actor's FragmentPublisher (the MULTI publish batch and the rate-limit
   reads), status beat and weights reads; the learner's RunState (control hash, env-step
   counter, the ppo group) and weights publication; the scorer's ScoringLoop (groups,
   marks, window, janitor), SegmentServer (endpoint heartbeat, episode picks), its ppo
   reads and the dead-letter stream. Nothing may be refused: Redis's ACL LOG stays empty.
2. What a role must not do gets NOPERM: the actor writing the control hash, expiring or
   deleting the episodes stream, resetting the step counter; any role touching another
   run's keys (also one whose name starts with this run's); FLUSHALL, CONFIG, KEYS.
3. start.sh refuses a run name that could widen the patterns.

Needs a ``redis-server`` >= 7.0 (ACL selectors); skipped without one, except under CI.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import torch

from actor.publish import FragmentPublisher
from common import keys
from common.config import ClusterConfig
from common.ledger import Ledger
from common.metrics import ActorMetrics, LearnerMetrics, ScorerMetrics
from common.redis_io import RetryPolicy, ServiceUnavailable, ack, connect, read_group
from common.status import status_beat
from common.weights import fetch_weights, publish_weights
from learner.run_state import RunState
from scorer.dead_letter import dead_letter
from scorer.score import ScoringLoop
from scorer.serve import SegmentServer
from tests.deploy.compose_support import free_port, redis_server_7
from tests.integration.pipeline_helpers import make_config, marked, play_episodes, publish

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "deploy" / "redis" / "start.sh"
RUN = "acl.run_1-x"  # every character class a run name may hold
OTHER = "acl.run_1-xy"  # another run, whose name starts with this one's
ROLES = ("actor", "scorer", "learner")


@dataclass
class AclRedis:
    port: int
    passwords: dict[str, str]
    acl: str  # the rendered ACL file

    def url(self, role: str) -> str:
        return f"redis://{role}:{self.passwords[role]}@127.0.0.1:{self.port}/0"

    def client(self, role: str) -> redis.Redis:
        return connect(self.url(role), retry=RetryPolicy(attempts=1), client_name=f"{role}-t")

    def admin(self) -> redis.Redis:
        return connect(self.url("admin"), retry=RetryPolicy(attempts=1))


def _render(tmp: Path, server: str, run: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ.get("PATH", ""), "REDIS_SERVER": server,
               "MEMUP_RUN_NAME": run, **{f"{r.upper()}_REDIS_PASSWORD": f"{r}-{'0' * 20}"
                                         for r in ROLES}, **env}
    return subprocess.run(["sh", str(START), "--render-only", str(tmp / "users.acl")],
                          env=environ, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    server = redis_server_7()
    tmp = tmp_path_factory.mktemp("acl")
    passwords = {r: secrets.token_hex(16) for r in (*ROLES, "admin")}
    env = {f"{r.upper()}_REDIS_PASSWORD": passwords[r] for r in ROLES}
    proc = _render(tmp, server, RUN, **env)
    assert proc.returncode == 0, proc.stderr
    acl = (tmp / "users.acl").read_text()
    # This test's own admin, to read the ACL LOG and set the scene.
    (tmp / "users.acl").write_text(acl + f"user admin on >{passwords['admin']} ~* &* +@all\n")
    port = free_port()
    log = (tmp / "redis.log").open("w")
    redis_proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--aclfile",
         str(tmp / "users.acl"), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
        stdout=log, stderr=subprocess.STDOUT)
    found = AclRedis(port, passwords, acl)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                found.admin().close()
                break
            except ServiceUnavailable:
                assert redis_proc.poll() is None, (tmp / "redis.log").read_text()
                assert time.monotonic() < deadline, "redis-server never answered"
                time.sleep(0.1)
        yield found
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=20)
        log.close()


def _config(acl_redis: AclRedis, role: str) -> ClusterConfig:
    return make_config(RUN, acl_redis.url(role), "scorer.replay_episodes=2",
                       "scorer.bind_host=127.0.0.1", "scorer.port=0")


def _refusals(admin: redis.Redis) -> list[dict[str, object]]:
    return [{k: e.get(k) for k in ("username", "reason", "object", "context")}
            for e in admin.acl_log()]


def test_every_pattern_is_this_runs(acl_redis: AclRedis) -> None:
    for line in acl_redis.acl.splitlines():
        patterns = [w.strip("()") for w in line.split() if w.strip("(").startswith(("~", "%"))]
        for pattern in patterns:
            assert pattern.split("~", 1)[1].startswith(f"memup:{RUN}:"), (line[:30], pattern)
    assert "memup:*" not in acl_redis.acl and "{{" not in acl_redis.acl


def test_each_roles_own_code_runs_unrefused(acl_redis: AclRedis) -> None:
    admin = acl_redis.admin()
    admin.acl_log_reset()
    actor, scorer, learner = (acl_redis.client(r) for r in ROLES)
    stop = threading.Event()
    stream = keys.episodes_stream(RUN)

    # The learner sets the run up: control hash, counter, detector weights.
    state = RunState(_config(acl_redis, "learner"), learner, LearnerMetrics(), stop,
                     Ledger(None, "learner"))
    state.env_steps_seen = 40  # carried over from a checkpoint: INCRBY after HSETNX
    assert state.ensure(phase=1, trained_steps=0, force=True)
    publish_weights(learner, RUN, "detector", {"w": torch.ones(2)}, 1)  # WATCH..EXEC

    # Actors publish through their own FragmentPublisher (MULTI RPUSH EXPIRE INCRBY XADD)
    # and read what the rate limit, the status view and the weights watcher read.
    config = _config(acl_redis, "actor")
    episodes = play_episodes(config, 4, seed=1)
    published = publish(actor, config, episodes)
    publisher = FragmentPublisher(actor, config, ActorMetrics(env="tmaze"))
    status_beat(actor, RUN, "actor-0", lambda: {"steps": 1.0})()
    assert fetch_weights(actor, RUN, "detector")[0] == 1

    # The scorer scores, marks and trims its window; serves; reads the ppo group.
    loop = ScoringLoop(_config(acl_redis, "scorer"), "scorer-0", scorer, ScorerMetrics(), stop)
    publisher._check_backlog()  # now with the scorers group: XINFO GROUPS + XRANGE
    scored = loop.metrics.registry
    deadline = time.monotonic() + 30
    while (scored.get_sample_value("memup_scorer_episodes_scored_total") < 4
           and time.monotonic() < deadline):
        loop.tick()
    assert scored.get_sample_value("memup_scorer_replay_evicted_total") == 2  # ZPOPMIN, DEL
    assert len(marked(admin, RUN)) == 2
    server = SegmentServer(_config(acl_redis, "scorer"), "scorer-0", scorer, ScorerMetrics(),
                           stop)
    serving = threading.Thread(target=server.run)
    serving.start()
    endpoints = keys.scorer_endpoints_pattern(RUN)
    deadline = time.monotonic() + 10
    while not list(learner.scan_iter(match=endpoints)) and time.monotonic() < deadline:
        time.sleep(0.05)
    (endpoint,) = list(learner.scan_iter(match=endpoints))  # the learner's discovery
    assert learner.get(endpoint) == server.endpoint.encode()
    stop.set()
    serving.join(timeout=10)
    assert not list(admin.scan_iter(match=endpoints)), "the endpoint key outlived the server"
    assert server._pick_new() is not None  # ZRANDMEMBER + MULTI GET mark, LRANGE frag

    state.begin_ppo()  # XGROUP CREATE ppo $ (MKSTREAM)
    assert keys.PPO_GROUP.encode() in [g["name"] for g in learner.xinfo_groups(stream)]
    state.set_control(phase=2)
    episodes += play_episodes(config, 1, seed=2, prefix="ppo")
    publish(actor, config, episodes[-1:])
    read = read_group(scorer, stream, keys.PPO_GROUP, "scorer-0", count=10, block_ms=None,
                      pending=False)
    assert len(read.entries) == 1 and ack(scorer, stream, keys.PPO_GROUP,
                                          [read.entries[0][0]]) == 1
    dead_letter(scorer, loop.config, source="test", entry="-", reason="malformed", detail="x",
                frame=b"junk")
    publisher._check_backlog()  # phase 2: the ppo group's backlog
    # Every episode's steps, on top of the 40 the learner carried over.
    assert state.env_steps() == 40 + sum(done.length for _, done in episodes)
    assert learner.lrange(keys.outcomes_key(RUN), 0, -1)  # the detector's outcomes
    assert learner.zcard(keys.replay_key(RUN)) == 2
    learner.set(keys.status_key(RUN, "learner-0"), "{}", px=5000)

    assert len(published) == 4 and admin.xlen(stream) == 5
    assert _refusals(admin) == [], "a role's own Redis call was refused"
    for client in (admin, actor, scorer, learner):
        client.close()


NOPERM = [
    # The control state is the learner's: actors and scorers only read it.
    ("actor", ("HSET", f"memup:{RUN}:control", "phase", "1")),
    ("actor", ("HDEL", f"memup:{RUN}:control", "phase")),
    ("actor", ("DEL", f"memup:{RUN}:control")),
    ("actor", ("EXPIRE", f"memup:{RUN}:control", "1")),
    ("actor", ("SET", f"memup:{RUN}:control", "x")),
    ("scorer", ("HSET", f"memup:{RUN}:control", "phase", "2")),
    # The episodes stream: actors append, nobody ends it.
    ("actor", ("EXPIRE", f"memup:{RUN}:episodes", "1")),
    ("actor", ("DEL", f"memup:{RUN}:episodes")),
    ("actor", ("XTRIM", f"memup:{RUN}:episodes", "MAXLEN", "0")),
    ("actor", ("XDEL", f"memup:{RUN}:episodes", "1-1")),
    ("actor", ("XGROUP", "DESTROY", f"memup:{RUN}:episodes", "scorers")),
    ("actor", ("RENAME", f"memup:{RUN}:episodes", f"memup:{RUN}:frag:x")),
    ("scorer", ("DEL", f"memup:{RUN}:episodes")),
    ("scorer", ("XADD", f"memup:{RUN}:episodes", "*", "msg", "x")),
    ("learner", ("XADD", f"memup:{RUN}:episodes", "*", "msg", "x")),
    ("learner", ("DEL", f"memup:{RUN}:episodes")),
    # The step counter only grows; fragments are the actors' and the window's.
    ("actor", ("SET", f"memup:{RUN}:env_steps", "0")),
    ("actor", ("DEL", f"memup:{RUN}:env_steps")),
    ("actor", ("EXPIRE", f"memup:{RUN}:env_steps", "1")),
    ("actor", ("INCRBY", f"memup:{RUN}:frag:e", "1")),
    ("actor", ("DEL", f"memup:{RUN}:frag:e")),
    ("actor", ("SET", f"memup:{RUN}:mark:e", "x")),
    ("actor", ("ZADD", f"memup:{RUN}:replay", "1", "e")),
    ("actor", ("SET", f"memup:{RUN}:status:scorer-0", "x")),
    ("actor", ("SCAN", "0")),
    ("scorer", ("EXPIRE", f"memup:{RUN}:frag:e", "1")),
    ("scorer", ("SET", f"memup:{RUN}:env_steps", "0")),
    ("learner", ("RPUSH", f"memup:{RUN}:frag:e", "x")),
    ("learner", ("SET", f"memup:{RUN}:env_steps", "0")),
    ("learner", ("DEL", f"memup:{RUN}:replay")),
    # Weights are the learner's.
    ("actor", ("HSET", f"memup:{RUN}:weights:policy", "version", "9")),
    ("scorer", ("DEL", f"memup:{RUN}:weights:detector")),
    # Another run, including one whose name starts with this run's.
    *[(role, command) for role in ROLES for command in (
        ("RPUSH", f"memup:{OTHER}:frag:e", "x"),
        ("XADD", f"memup:{OTHER}:episodes", "*", "msg", "x"),
        ("INCRBY", f"memup:{OTHER}:env_steps", "1"),
        ("HGET", f"memup:{OTHER}:control", "phase"),
        ("HGET", f"memup:{OTHER}:weights:policy", "version"),
        ("SET", f"memup:{OTHER}:status:{role}-0", "x"),
        ("GET", "unrelated"),
    )],
    # No administration for anyone.
    *[(role, command) for role in ROLES for command in (
        ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"),
        ("SHUTDOWN", "NOSAVE"), ("EVAL", "return 1", "0"), ("MONITOR",),
    )],
]


@pytest.mark.parametrize(("role", "command"), NOPERM,
                         ids=[f"{r}-{' '.join(c)[:40]}" for r, c in NOPERM])
def test_what_a_role_must_not_do_is_refused(acl_redis: AclRedis, role: str,
                                            command: tuple[str, ...]) -> None:
    client = acl_redis.client(role)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    finally:
        client.close()


def test_the_default_user_is_off(acl_redis: AclRedis) -> None:
    anonymous = redis.Redis(port=acl_redis.port, socket_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=acl_redis.port, username="default", password="x").ping()
    anonymous.close()


@pytest.mark.parametrize("run", ["", "a:b", "a*", "-a", "a b", "a/b", "a" * 129])
def test_start_sh_refuses_a_run_name_that_could_widen_the_patterns(tmp_path: Path,
                                                                   run: str) -> None:
    proc = _render(tmp_path, redis_server_7(), run)
    assert proc.returncode != 0 and "MEMUP_RUN_NAME" in proc.stderr, proc.stderr
    assert not (tmp_path / "users.acl").exists()
