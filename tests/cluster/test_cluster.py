"""`docker compose up` on a real Docker engine (issue 23).

Two compose projects, one after the other, both T-Maze-LNR-20 (configs/up_tmaze_lnr_20.toml):

- ``run1``: the stack as a user starts it; every service healthy, phase II, finished;
  Prometheus (in the stack) sees every actor with a non-zero env-steps rate, and every
  Grafana dashboard query returns data.
- ``run2``: PPO's target made unreachable (ppo.target_success=1.01) so the run goes on while
  the tests act on it, in order: ``--scale actor=4``; an actor on another host (a network
  namespace with only REDIS_URL); kill -9 by host PID of an actor, the scorer, the learner
  and Redis, ``docker pause`` of the learner for 60 s, ``docker network disconnect`` of an
  actor for 30 s. Then the learner's env-step budget is lowered (a recreated learner:
  SIGTERM, checkpoint, resume) and the run must end on it; the episode ledger gives lost
  and trained-twice episodes.

Figures go to the terminal summary and to ``$MEMUP_CLUSTER_RESULTS`` (default
``<cache>/cluster-results.json``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from cli.faults.recovery import grace_s, produced_between, rolled_back_only
from common.ledger import figures
from tests.cluster.conftest import Netns
from tests.cluster.stack import CONFIG, REPO, RUN, Stack, free_port, wait
from tests.deploy.observability_support import (
    GRAFANA_BUILTINS,
    dashboard_exprs,
    dashboards,
    referenced_metrics,
    substitute,
)

RESULTS: dict[str, dict] = {}


def record(name: str, **values: object) -> None:
    RESULTS.setdefault(name, {}).update(values)


def since(t0: float) -> float:
    return round(time.time() - t0, 1)


ERRORS = ("memup_actor_redis_errors_total", "memup_scorer_redis_errors_total",
          "memup_learner_redis_errors_total", "memup_actor_fragments_dropped_total")
"""Counters with a label per kind: no series until the first error."""
SUPERVISOR = ("memup_supervisor_",)
"""Series of `memup up`'s supervisor: absent under compose."""


def _empty_dashboard_queries(stack: Stack, start: float) -> list[str]:
    """The metric of every dashboard query that returned no data from ``start`` to now."""
    boards = dashboards()
    live = {**GRAFANA_BUILTINS, "__rate_interval": "30s", "__interval": "5s"}
    empty = []
    for name, _title, expr in dashboard_exprs():
        data = stack.prometheus("/api/v1/query_range", query=substitute(expr, boards[name], live),
                                start=start, end=time.time(), step=5)
        if not data["result"]:
            metrics = sorted(referenced_metrics(expr)) or [expr]
            empty.append(f"{metrics[0]} ({name})")
    return sorted(set(empty))


# -- run 1: the stack as a user starts it -------------------------------------------------


@pytest.fixture()  # torn down right after its test: its idle stack must not load run 2
def run1(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack("memupc1", tmp_path_factory.mktemp("run1"), images,
                  redis_publish=f"127.0.0.1:{free_port()}")
    stack.down()
    try:
        yield stack
    finally:
        stack.down()


def test_compose_up_is_healthy_reaches_phase_two_and_finishes(run1: Stack) -> None:
    t0 = time.time()
    run1.up()

    def all_healthy() -> bool:
        states = run1.healthy()
        want = {"healthy", "exited 0", "running"}
        return len(states) == 7 and set(states.values()) <= want
    wait(all_healthy, 180, "every service healthy")
    healthy_s = since(t0)
    states = run1.healthy()
    assert sum(s == "healthy" for s in states.values()) == 5, states  # redis, 2 actors, ...
    wait(lambda: run1.learner_said("phase II:"), 300, "phase II")
    phase2_s, t_phase2 = since(t0), time.time()
    wait(lambda: run1.learner_said("learner.phase_two: done: "), 300,
         "the run to finish")
    done_s = since(t0)

    # Prometheus, in the stack: every actor target up, each with a non-zero rate of env
    # steps while the run trained (evaluated at the start of phase II).
    targets = run1.actor_targets()
    assert len(targets) == 2 and set(targets.values()) == {"up"}, targets
    rows = run1.query("sum by (instance) (rate(memup_actor_env_steps_total[30s]))",
                      at=t_phase2)
    rates = {r["metric"]["instance"]: float(r["value"][1]) for r in rows}
    assert set(rates) == set(targets) and all(v > 0 for v in rates.values()), rates

    # Every query of the Grafana dashboards returns data over the run, but for the error
    # counters of a run without errors (run 2's faults give them data) and the `memup up`
    # supervisor's series (no supervisor under compose: docker restarts the containers).
    empty = _empty_dashboard_queries(run1, t0)
    fig = figures(run1.ledger).as_dict()
    record("compose up", healthy_s=healthy_s, phase2_s=phase2_s, finished_s=done_s,
           actor_rates=rates, lost=fig["lost"], trained_twice=fig["trained_twice"],
           dashboard_queries=len(dashboard_exprs()), without_data=empty)
    assert all(e.startswith(ERRORS + SUPERVISOR) for e in empty), "\n".join(empty)
    assert fig["lost"] == 0 and fig["trained_twice"] == 0, fig


# -- run 2: scaled, joined from another host, faults --------------------------------------


@pytest.fixture(scope="module")
def run2(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
         remote_host: Netns) -> Iterator[Stack]:
    port = free_port()
    stack = Stack("memupc2", tmp_path_factory.mktemp("run2"), images,
                  redis_publish=f"{remote_host.host_ip}:{port}",
                  TEST_PPO_TARGET_SUCCESS="1.01", TEST_PPO_MAX_ENV_STEPS="1000000000")
    stack.redis_port = port  # type: ignore[attr-defined]
    stack.down()
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def _live_rates(stack: Stack) -> dict[str, float]:
    """Env steps/s of each actor target Prometheus scrapes now (0 where none yet); the
    series of removed containers are left out."""
    rates = stack.actor_rates()
    return {i: rates.get(i, 0.0) for i, health in stack.actor_targets().items() if health == "up"}


def _stepping(stack: Stack, n: int) -> bool:
    rates = _live_rates(stack)
    return len(stack.actor_targets()) == n and len(rates) == n and all(rates.values())


def _total_rate(stack: Stack) -> float:
    return round(sum(_live_rates(stack).values()), 1)


def test_scale_actors_while_running(run2: Stack) -> None:
    """In phase II (both rates in one phase), actors capped at 0.1 CPU each: this machine
    has 2 cores for everything, so uncapped, more actors only share the same CPU, and the
    actors' backlog limit ties the rate to what the learner consumes. Capped, they stand for
    actors on small machines of their own."""
    wait(lambda: run2.learner_said("phase II:"), 300, "phase II")
    run2.env["TEST_ACTOR_CPUS"] = "0.1"
    run2.compose("up", "-d", "--no-build", "--scale", "actor=2", "actor")  # recreated, capped
    wait(lambda: _stepping(run2, 2), 180, "Prometheus to see 2 capped actors stepping")
    time.sleep(30)  # a whole rate window with the 2 actors
    before = _total_rate(run2)
    t = time.time()
    run2.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "actor=4", "actor")
    wait(lambda: _stepping(run2, 4), 240, "Prometheus to find 4 actors stepping (no config edit)")
    seen_s = since(t)
    time.sleep(30)  # a whole rate window with the 4 actors
    after = _total_rate(run2)
    record("scale 2 -> 4", rate_before=before, rate_after=after, seen_s=seen_s,
           actor_cpus=run2.env["TEST_ACTOR_CPUS"], phase="II")
    assert after > before, (before, after)
    # Back to 2 uncapped actors (recreated) for what follows.
    run2.env["TEST_ACTOR_CPUS"] = "0"
    run2.compose("up", "-d", "--no-build", "--scale", "actor=2", "actor")


def _remote_env(stack: Stack, url: str, ledger: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMUP_")}
    env.update(REDIS_URL=url, MEMUP_RUN_NAME=RUN, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if ledger:
        env["MEMUP_LEDGER"] = str(stack.ledger)
    return env


def _actor(replica: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "actor", "--config", str(REPO / CONFIG),
            "--replica", replica]


def test_an_actor_on_another_host_joins_with_only_redis_url(run2: Stack,
                                                           remote_host: Netns) -> None:
    host, port = remote_host.host_ip, run2.redis_port  # type: ignore[attr-defined]
    good = f"redis://actor:{run2.passwords['actor']}@{host}:{port}/0"
    bad = f"redis://actor:wrong-{run2.passwords['actor']}@{host}:{port}/0"
    unreachable = f"redis://actor:{run2.passwords['actor']}@{host}:{port + 1}/0"
    logs = run2.folder
    procs = {
        "wrong password": remote_host.popen(_actor("wrongpw"), _remote_env(run2, bad, False),
                                            logs / "remote-wrongpw.log"),
        "unreachable": remote_host.popen(_actor("noredis"),
                                         _remote_env(run2, unreachable, False),
                                         logs / "remote-noredis.log"),
        "good": remote_host.popen(_actor("remote-1"), _remote_env(run2, good),
                                  logs / "remote-1.log"),
    }
    t = time.time()
    try:
        def trained_remote() -> int:
            eps = {e["ep"] for e in run2.events()
                   if e["e"] == "produced" and e["ep"].startswith("actor-remote-1-")}
            return sum(1 for e in run2.events()
                       if e["e"] in ("trained", "sampled") and e.get("ep") in eps)
        wait(trained_remote, 300, "the learner to train on the remote actor's episodes")
        trained_s = since(t)
        steps = trained_remote()
        for what in ("wrong password", "unreachable"):
            assert procs[what].poll() is None, f"{what}: the actor exited instead of retrying"
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {what: proc.wait(60) for what, proc in procs.items()}
    lines = {what: [x for x in (logs / f"remote-{n}.log").read_text().splitlines()
                    if " ERROR " in x]
             for what, n in (("wrong password", "wrongpw"), ("unreachable", "noredis"))}
    assert codes["good"] == 0, (logs / "remote-1.log").read_text()[-2000:]
    assert lines["wrong password"] and all(
        "refused the credentials" in x and "retrying in" in x for x in lines["wrong password"])
    assert lines["unreachable"] and all(
        "gave up after" in x and "retrying in" in x for x in lines["unreachable"])
    assert all("Traceback" not in (logs / f"remote-{n}.log").read_text()
               for n in ("wrongpw", "noredis"))
    record("actor on another host", trained_events_on_its_episodes=steps,
           first_training_within_s=trained_s,
           wrong_password_lines=len(lines["wrong password"]),
           unreachable_lines=len(lines["unreachable"]))


def _recovered(stack: Stack, t: float, what: str, timeout: float = 120) -> dict[str, float]:
    rec = wait(lambda: stack.trained_after(t), timeout, f"the learner to train after {what}")
    fresh = wait(lambda: stack.trained_after(t, fresh=True), timeout,
                 f"the learner to train on an episode made after {what}")
    return {"recover_s": rec, "fresh_s": fresh}


def _actor_back(stack: Stack, container: str, t: float) -> float:
    host = stack.inspect(container, "{{.Config.Hostname}}")
    return wait(lambda: next((round(e["t"] - t, 2) for e in stack.events()
                              if e["e"] == "produced" and e["t"] > t
                              and e["ep"].startswith(f"actor-{host}-")), None),
                120, f"{container} to publish again")


def test_docker_faults_lose_nothing_and_train_nothing_twice(run2: Stack) -> None:
    faults: dict[str, dict[str, float]] = {}
    redis_kills: list[float] = []
    for service in ("actor", "scorer", "learner", "redis"):
        t, name = run2.kill9(service)
        faults[f"kill -9 {service}"] = _recovered(run2, t, f"kill -9 {service}")
        if service == "actor":
            faults["kill -9 actor"]["actor_back_s"] = _actor_back(run2, name, t)
        if service == "redis":
            redis_kills.append(t)

    learner = run2.container("learner")
    subprocess.run(["docker", "pause", learner], check=True, capture_output=True)
    run2.note("docker pause learner")
    time.sleep(60)
    subprocess.run(["docker", "unpause", learner], check=True, capture_output=True)
    t = run2.note("docker unpause learner")
    faults["docker pause learner 60 s"] = _recovered(run2, t, "unpause")

    actor = run2.container("actor")
    network = f"{run2.project}_backend"
    subprocess.run(["docker", "network", "disconnect", network, actor], check=True,
                   capture_output=True)
    t0 = run2.note("network disconnect actor")
    time.sleep(30)
    subprocess.run(["docker", "network", "connect", network, actor], check=True,
                   capture_output=True)
    t = run2.note("network connect actor")
    faults["network disconnect actor 30 s"] = {**_recovered(run2, t0, "disconnect"),
                                               "actor_back_s": _actor_back(run2, actor, t)}

    # End the run: its budget lowered to ~60 k more env steps (the learner is recreated
    # with the new value: SIGTERM, checkpoint, resume).
    r = redis.Redis(host=run2.env["TEST_REDIS_PUBLISH"].split(":")[0],
                    port=run2.redis_port,  # type: ignore[attr-defined]
                    username="learner", password=run2.passwords["learner"])
    steps = int(r.get(f"memup:{RUN}:env_steps") or 0)
    r.close()
    run2.env["TEST_PPO_MAX_ENV_STEPS"] = str(steps + 60_000)
    run2.compose("up", "-d", "--no-build", "--no-deps", "learner")
    wait(lambda: run2.learner_said("the env-step budget"), 300, "the run to end on its budget")
    time.sleep(3)
    events = run2.events()
    fig = figures(run2.ledger, grace_s=grace_s(events)).as_dict()
    aof = sum(produced_between(events, t - 2.0, t) for t in redis_kills)
    rolled = rolled_back_only(events)
    empty = _empty_dashboard_queries(run2, run2.started)
    record("docker faults", faults=faults, **fig, lost_bound=aof + rolled,
           run_s=since(run2.started), dashboard_queries_without_data=empty)
    assert all(e.startswith(ERRORS + SUPERVISOR) for e in empty), empty
    assert sum(e.startswith(ERRORS) for e in empty) < len(ERRORS), "no Redis error counted"
    assert fig["trained_twice"] == 0, fig
    assert fig["lost"] <= aof + rolled, (fig, aof, rolled)
    for what, f in faults.items():
        assert f["recover_s"] <= 120 and f["fresh_s"] <= 120, (what, f)
