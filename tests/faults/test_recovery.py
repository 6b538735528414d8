"""The fault suite's own arithmetic on hand-made ledger events (fast, no processes)."""

from __future__ import annotations

from cli.bench_faults import table
from cli.faults.recovery import (
    fresh_s,
    grace_s,
    produced_between,
    recover_s,
    rollback_window_s,
    rolled_back_only,
    worst,
)


def _ev(e: str, t: float, **kw: object) -> dict:
    return {"e": e, "t": t, **kw}


EVENTS = [
    _ev("produced", 1.0, ep="a", id="1-0"),
    _ev("produced", 2.0, ep="b", id="2-0"),
    _ev("resumed", 2.5, inc="i1", u=0),
    _ev("trained", 3.0, ep="a", inc="i1", u=1),
    _ev("trained", 4.0, ep="b", inc="i1", u=2),  # undone: i2 resumes from update 1
    _ev("produced", 5.5, ep="c", id="5-0"),
    _ev("resumed", 6.0, inc="i2", u=1),
    _ev("trained", 7.0, ep="c", inc="i2", u=2),
]


def test_recovery_counts_from_the_fault_to_the_next_training() -> None:
    assert recover_s(EVENTS, 4.5) == 2.5
    assert recover_s(EVENTS, 7.5) is None
    # fresh: the first training of an episode produced after the fault
    assert fresh_s(EVENTS, 2.5) == 4.5
    assert worst([1.0, 3.0]) == 3.0 and worst([1.0, None]) is None


def test_rolled_back_episodes_and_window() -> None:
    assert rolled_back_only(EVENTS) == 1  # b: trained only in i1's undone update 2
    assert rollback_window_s(EVENTS) == 0.0  # one undone event: no stretch
    assert produced_between(EVENTS, 1.0, 5.5) == 2
    assert grace_s(EVENTS) == 5.0  # the last event is a training: only the tail


def test_table_renders_a_record_in_both_forms() -> None:
    rec = {"fault": "F1", "what": "actor SIGKILL", "finished": True, "produced": 1234,
           "lost": 0, "lost_max": 0, "trained_twice": 0, "rolled_back": 0, "recover_s": 1.5,
           "fresh_s": None, "peak_redis_mb": 14.2, "peak_rss_max_mb": 430.0,
           "restarts": {"actor-1": 2}, "passed": True}
    assert "1,234" in table([rec]) and "never" in table([rec])
    md = table([rec], markdown=True).splitlines()
    assert md[0].startswith("| fault |") and md[2].startswith("| F1 | actor SIGKILL | yes |")
