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


def _kept_up_to(events: list[dict[str, Any]]) -> dict[str, float]:
    """Per learner incarnation, the last PPO update a later restart kept (the rule of
    :func:`common.ledger.figures`: the next incarnation resumed from that update)."""
    resumed = [(e["inc"], int(e["u"])) for e in events if e["e"] == "resumed"]
    return {inc: (float("inf") if nxt is None else float(nxt[1]))
            for (inc, _), nxt in zip(resumed, [*resumed[1:], None])}


def rolled_back_only(events: list[dict[str, Any]]) -> int:
    """Episodes PPO trained on only in updates a restart undid (the learner had acked them,
    so nothing serves them again): what a learner restart costs beyond its checkpoint."""
    kept = _kept_up_to(events)
    trained: dict[str, bool] = {}
    for e in events:
        if e["e"] == "trained":
            ok = int(e["u"]) <= kept.get(e["inc"], float("inf"))
            trained[e["ep"]] = trained.get(e["ep"], False) or ok
    return sum(1 for ok in trained.values() if not ok)


def rollback_window_s(events: list[dict[str, Any]]) -> float:
    """The longest stretch of PPO training one restart undid (first to last undone update of
    an incarnation): at most the checkpoint interval plus a save."""
    kept = _kept_up_to(events)
    spans: dict[str, list[float]] = {}
    for e in events:
        if e["e"] == "trained" and int(e["u"]) > kept.get(e["inc"], float("inf")):
            spans.setdefault(e["inc"], []).append(e["t"])
    return round(max((max(ts) - min(ts) for ts in spans.values()), default=0.0), 2)
