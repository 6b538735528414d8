"""F1 to F8: each a short T-Maze-LNR-20 ``memup up`` run with one kind of fault injected.

Every run caps phase I at 600 MemUP updates and makes PPO's success target unreachable,
so it ends on its env-step budget (``ppo.max_env_steps``) a minute or so later: the
faults land in a run that must go on to its budget by itself. Each scenario states its
bounds (:class:`Bounds`); :func:`cli.faults.record.run_scenario` measures and checks them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli.faults import inject
from cli.faults.cluster import Cluster
from cli.faults.recovery import produced_between
from common import keys

COMMON = ("memup.max_updates=600", "ppo.target_success=1.01")
"""Overrides of every scenario: a bounded phase I, and a run that ends on its budget."""
REDIS_MB = 256.0
"""Redis ``used_memory`` bound of every run (the flood adds its own bytes, see F8)."""
RSS_MB = 1200.0
"""RSS bound of every role process (and of ``memup up`` itself)."""
RECOVER_S = 30.0
"""Time-to-recover bound where a fault does not stop the learner for longer."""
FRESH_S = 60.0
"""Fault → the learner trains on an episode produced after it: the whole pipeline works
again (phase I samples a replay window of 2,000 episodes, so a new one takes a while)."""
FLOOD_ENTRIES, FLOOD_BYTES = 12_000, 64 * 1024
FLOOD_REDIS_MB = 1900.0
"""F8: the flood's own 786 MB cost Redis ~1.1 GB (a 64 KiB value takes a larger allocation);
the run must stay below the embedded Redis's maxmemory (2 GB), where writes would fail."""


class NotReached(RuntimeError):
    """The run never got to the moment the fault is meant for."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise NotReached(what)


@dataclass(frozen=True)
class Bounds:
    """What a scenario's run must stay within."""

    lost: str = "0"  #: the loss bound as said in docs (the number comes from ``lost_max``)
    recover_s: float = RECOVER_S  #: the worst fault → first training after it
    fresh_s: float = FRESH_S  #: the worst fault → first training on an episode made after it
    redis_mb: float = REDIS_MB
    rss_mb: float = RSS_MB


@dataclass(frozen=True)
class Scenario:
    """One fault scenario: its run's settings, the injection, and the bounds."""

    id: str
    fault: str  #: what is done, in a few words (the table's first column)
    inject: Callable[[Cluster, random.Random], dict[str, Any]]
    budget: int  #: ``ppo.max_env_steps``
    overrides: tuple[str, ...] = ()
    max_minutes: float = 4.0
    bounds: Bounds = field(default_factory=Bounds)
    #: the loss bound in episodes, from the record and the ledger events (default 0)
    lost_max: Callable[[dict[str, Any], list[dict[str, Any]]], int] = lambda rec, ev: 0
    #: further checks on the scenario's own figures: (name, value, bound, ok)
    extra_checks: Callable[[dict[str, Any]], list[tuple[str, Any, Any, bool]]] = \
        lambda rec: []


# -- the injections -----------------------------------------------------------------------


def _kill_actor(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """An actor SIGKILLed mid-episode once in each phase (a random actor, a random moment)."""
    for phase in (1, 2):
        _need(c.wait_phase(phase, records=3), f"phase {phase}")
        time.sleep(rng.uniform(0.0, 2.0))
        replica = rng.randrange(2)
        inject.kill(c.pid("actor", replica))
        c.note(f"SIGKILL actor-{replica} (phase {phase})")
    return {}


def _kill_scorer(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """The only scorer SIGKILLed once in each phase, while it holds pending entries."""
    for phase in (1, 2):
        _need(c.wait_phase(phase, records=3), f"phase {phase}")
        time.sleep(rng.uniform(0.0, 2.0))
        inject.kill(c.pid("scorer", 0))
        t = c.note(f"SIGKILL scorer-0 (phase {phase})")
        c.wait_trained_after(t)
    return {}


def _kill_redis(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """The embedded redis-server SIGKILLed once in each phase (AOF everysec kept)."""
    url = c.url()
    for phase in (1, 2):
        _need(c.wait_phase(phase, records=3), f"phase {phase}")
        time.sleep(rng.uniform(0.0, 2.0))
        pid = inject.redis_server_pid(url)
        _need(pid is not None, "a running redis-server")
        inject.kill(pid)  # type: ignore[arg-type]
        t = c.note(f"SIGKILL redis-server (phase {phase})")
        c.wait_trained_after(t)
    return {}


def _aof_window(rec: dict[str, Any], events: list[dict[str, Any]]) -> int:
    """AOF everysec: what reached Redis in the 2 s before each kill may be gone (one second
    of fsync lag, one more when an fsync is slow, as Redis documents)."""
    return sum(produced_between(events, t - 2.0, t) for t in rec["fault_times"])


def _wipe_redis(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """FLUSHALL in phase II: every key of the run is gone (streams, groups, control)."""
    _need(c.wait_phase(2, records=3), "phase 2")
    time.sleep(rng.uniform(0.0, 2.0))
    r = c.redis()
    at_risk = 0
    for group in r.xinfo_groups(keys.episodes_stream(c.name)):
        at_risk += int(group.get("pending") or 0) + int(group.get("lag") or 0)
    inject.flushall(c.url())
    t = c.note(f"FLUSHALL ({at_risk} episodes pending or undelivered in the groups)")
    c.wait_trained_after(t)
    return {"at_risk": at_risk}


def _wiped(rec: dict[str, Any], events: list[dict[str, Any]]) -> int:
    """What Redis held at the wipe, plus what actors wrote until the learner first trained
    on an episode produced after it (groups come back at the stream's end: entries written
    before that belong to no group)."""
    t = rec["fault_times"][0]
    fresh = rec["fresh_s"] if rec["fresh_s"] is not None else 1e9
    return rec["extra"].get("at_risk", 0) + produced_between(events, t, t + fresh)


def _kill_learner(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """The learner SIGKILLed once in phase I and twice in phase II."""
    for phase, records in ((1, 3), (2, 3), (2, 6)):
        _need(c.wait_phase(phase, records=records), f"{records} phase-{phase} records")
        time.sleep(rng.uniform(0.0, 2.0))
        inject.kill(c.pid("learner"))
        t = c.note(f"SIGKILL learner (phase {phase})")
        _need(c.wait_trained_after(t, timeout_s=120), "the learner back")
    return {}


def _kill_learner_saving(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """The learner SIGKILLed 4 times at random moments (twice in each phase), each when a
    checkpoint temp file is being written if one shows up within 3 s (checkpoints every
    second)."""
    folder = c.run_path / "checkpoints"
    during = 0
    for phase in (1, 1, 2, 2):
        _need(c.wait_phase(phase, records=2), f"phase {phase}")
        time.sleep(rng.uniform(0.5, 3.0))
        pid = c.pid("learner")
        deadline = time.monotonic() + 3.0
        saving = False
        while not saving and time.monotonic() < deadline:
            saving = any(p.name.endswith(".tmp") for p in folder.glob(".learner.pt.*"))
            if not saving:
                time.sleep(0.001)
        inject.kill(pid)
        during += saving
        when = "during a checkpoint write" if saving else "between writes"
        t = c.note(f"SIGKILL learner ({when})")
        _need(c.wait_trained_after(t, timeout_s=120), "the learner back")
    return {"kills": 4, "during_write": during}


def _rollback_checks(every_s: float) -> Callable[[dict[str, Any]], list[tuple[str, Any, Any,
                                                                               bool]]]:
    """A restart resumes from the newest checkpoint: what it undoes spans at most one
    checkpoint interval (plus a save)."""
    def check(rec: dict[str, Any]) -> list[tuple[str, Any, Any, bool]]:
        window = rec["rollback_window_s"]
        return [("PPO training undone by one restart, s", window, f"<= {every_s + 2:.0f}",
                 window <= every_s + 2)]
    return check


def _checkpoint_checks(rec: dict[str, Any]) -> list[tuple[str, Any, Any, bool]]:
    from common.checkpoint import CheckpointError, load_checkpoint

    path = rec["run_path"] + "/checkpoints/learner.pt"
    try:
        load_checkpoint(path)
        loads = True
    except CheckpointError:
        loads = False
    stray = rec["extra"].get("stray_tmp", 0)
    return [("final checkpoint loads", loads, True, loads),
            ("stray temp files", stray, 0, stray == 0),  # the restarted learner deletes them
            *_rollback_checks(1.0)(rec)]


def _freeze_learner(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """The learner SIGSTOPped for 60 s in phase II (its sockets stay open), then SIGCONT."""
    _need(c.wait_phase(2, records=3), "phase 2")
    time.sleep(rng.uniform(0.0, 2.0))
    pid = c.pid("learner")
    c.freeze(pid)
    c.note("SIGSTOP learner", recover_from=False)
    time.sleep(60.0)
    c.thaw(pid)
    c.note("SIGCONT learner after 60 s")
    return {"frozen_s": 60}


def _forge(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """One forged RolloutRequest (no credentials, then gone) in each phase."""
    got = {}
    for phase in (1, 2):
        _need(c.wait_phase(phase, records=3), f"phase {phase}")
        endpoint = inject.scorer_endpoint(c.url(), c.name)
        got[f"phase{phase}"] = inject.forge_rollout_request(endpoint)
        c.note(f"forged RolloutRequest to {endpoint} (phase {phase}): "
               f"{got[f'phase{phase}']} rollouts received")
    return {"forged_replies": got}


def _forged_checks(rec: dict[str, Any]) -> list[tuple[str, Any, Any, bool]]:
    got = sum(rec["extra"].get("forged_replies", {}).values())
    return [("rollouts sent to the forger", got, 0, got == 0)]


def _flood(c: Cluster, rng: random.Random) -> dict[str, Any]:
    """12,000 garbage entries of 64 KiB each XADDed to the episodes stream in phase I."""
    _need(c.wait_phase(1, records=3), "phase 1")
    r = c.redis()
    before = int(r.info("memory")["used_memory"])
    t = c.note("flood: 12,000 x 64 KiB garbage entries")
    sent = inject.flood_episodes(c.url(), c.name, FLOOD_ENTRIES, FLOOD_BYTES)
    written = int(r.info("memory")["used_memory"])
    c.note(f"flood written in {time.time() - t:.1f}s")
    stream = keys.dead_letter_stream(c.name)
    # Done when the scorers' group has nothing left to read (every garbage entry refused).
    c.wait(lambda: all(int(g.get("lag") or 0) + int(g.get("pending") or 0) < 100
                       for g in r.xinfo_groups(keys.episodes_stream(c.name))), 120,
           "the scorers to refuse the flood")
    refused = int(r.info("memory")["used_memory"])
    return {"flood_mb": round(sent / 1e6, 1), "dead_letters": int(r.xlen(stream)),
            "dead_letter_mb": round(int(r.memory_usage(stream, samples=0) or 0) / 1e6, 2),
            # The garbage itself sits in the episodes stream until MAXLEN trims it: what
            # the flood costs Redis is the attacker's bytes; refusing them must add ~nothing.
            "flood_footprint_mb": round((written - before) / 1e6, 1),
            "growth_after_mb": round((refused - written) / 1e6, 1)}


def _flood_checks(rec: dict[str, Any]) -> list[tuple[str, Any, Any, bool]]:
    x = rec["extra"]
    growth = x.get("growth_after_mb", 1e9)
    return [("dead-letter entries", x.get("dead_letters"), "<= 1,100",
             x.get("dead_letters", 1e9) <= 1_100),
            ("dead-letter MB", x.get("dead_letter_mb"), "<= 2", x.get("dead_letter_mb", 1e9) <= 2),
            ("Redis growth while refusing the flood MB", growth, "<= 64", growth <= 64)]


SCENARIOS: dict[str, Scenario] = {s.id: s for s in (
    Scenario("F1", "actor SIGKILL (x2)", _kill_actor, budget=170_000,
             bounds=Bounds(lost="0: an actor's unfinished episodes never reached the stream")),
    Scenario("F2", "scorer SIGKILL (x2)", _kill_scorer, budget=170_000,
             bounds=Bounds(recover_s=30.0)),
    Scenario("F3a", "Redis SIGKILL, AOF (x2)", _kill_redis, budget=170_000,
             bounds=Bounds(lost="episodes produced in the 2 s before each kill",
                           recover_s=30.0), lost_max=_aof_window),
    Scenario("F3b", "Redis FLUSHALL, phase II", _wipe_redis, budget=170_000,
             bounds=Bounds(lost="pending at the wipe + produced until new episodes train",
                           recover_s=30.0), lost_max=_wiped),
    Scenario("F4", "learner SIGKILL (I x1, II x2)", _kill_learner, budget=230_000,
             overrides=("learner.checkpoint_every_s=5",),
             bounds=Bounds(recover_s=45.0), extra_checks=_rollback_checks(5.0)),
    Scenario("F5", "learner SIGKILL in checkpoint write (x4)", _kill_learner_saving,
             budget=200_000, overrides=("learner.checkpoint_every_s=1",),
             bounds=Bounds(recover_s=45.0), extra_checks=_checkpoint_checks),
    Scenario("F6", "learner SIGSTOP 60 s, phase II", _freeze_learner, budget=170_000,
             max_minutes=5.0, bounds=Bounds(recover_s=30.0)),
    Scenario("F7", "forged RolloutRequest (x2)", _forge, budget=170_000,
             extra_checks=_forged_checks),
    Scenario("F8", "dead-letter flood 12,000 x 64 KiB", _flood, budget=170_000,
             bounds=Bounds(redis_mb=FLOOD_REDIS_MB),
             extra_checks=_flood_checks),
)}
