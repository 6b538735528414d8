"""What the ledger says about a fault: time to recover, and the windows loss bounds count.

All times are wall-clock seconds (``time.time()``) of one machine: the ledger's events and
the injector's notes share a clock.
"""

from __future__ import annotations

from typing import Any

LEARNER_EVENTS = ("trained", "sampled")
"""The events that show the learner trained: a PPO update or a MemUP segment."""
TAIL_S = 5.0
"""Episodes produced this long before the learner's last training are still in flight when
the run ends (backlog, hand-outs): they are not due, so not counted as lost."""


def recover_s(events: list[dict[str, Any]], t0: float) -> float | None:
    """Seconds from ``t0`` to the learner's first training after it (None: never)."""
    for e in events:
        if e["t"] > t0 and e["e"] in LEARNER_EVENTS:
            return round(e["t"] - t0, 2)
    return None


def fresh_s(events: list[dict[str, Any]], t0: float) -> float | None:
    """Seconds from ``t0`` to the learner's first training on an episode produced after
    ``t0`` (the whole pipeline works again, reliability.md §11.2's TTR; None: never)."""
    born = {e["ep"]: e["t"] for e in events if e["e"] == "produced"}
    for e in events:
        if e["t"] > t0 and e["e"] in LEARNER_EVENTS and born.get(e.get("ep"), 0.0) > t0:
            return round(e["t"] - t0, 2)
    return None


def worst(values: list[float | None]) -> float | None:
    """The largest of several recovery times; None when any fault never recovered."""
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def produced_between(events: list[dict[str, Any]], start: float, end: float) -> int:
    """Episodes that reached the episodes stream in ``(start, end]``."""
    return sum(1 for e in events if e["e"] == "produced" and start < e["t"] <= end)


def grace_s(events: list[dict[str, Any]]) -> float:
    """The ``grace_s`` for :func:`common.ledger.figures`: everything produced after the
    learner's last training, and in the :data:`TAIL_S` before it, is not due yet."""
    if not events:
        return 0.0
    last = max((e["t"] for e in events if e["e"] in LEARNER_EVENTS), default=events[-1]["t"])
    return max(0.0, events[-1]["t"] - last) + TAIL_S
