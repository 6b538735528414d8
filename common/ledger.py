"""The episode ledger: where every episode went — produced, scored, trained, dropped.

Off unless the environment variable ``MEMUP_LEDGER`` names a directory (the fault suite and
``memup bench faults`` set it). Each process appends one JSON line per event to its own file
``<dir>/<role>-<host>-<pid>.jsonl`` and flushes it at once, so a ``kill -9`` loses at most the line
being written. The ledger lives outside Redis on purpose: it must survive Redis losing data.

Events (``e``), all with the wall time ``t``:

- ``produced``: an actor's episode reached the episodes stream (``ep``, its stream ``id``).
- ``scored``: a scorer admitted the episode to the replay window (``ep``).
- ``sampled``: the learner trained a MemUP segment of the episode (``ep``).
- ``ppo_start``: the learner created the ``ppo`` group; entries after ``id`` are PPO's.
- ``trained``: the learner trained PPO on the episode (``ep``), in update ``u`` of
  incarnation ``inc``.
- ``resumed``: incarnation ``inc`` started from a checkpoint at PPO update ``u`` (0: none).
- ``dropped``: the episode was dropped on purpose and counted (``ep``, ``why``: ``stale``).

:func:`figures` turns the files into the fault suite's numbers.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENV = "MEMUP_LEDGER"
"""The environment variable naming the ledger directory."""


class Ledger:
    """Appends events to this process's ledger file; does nothing when the ledger is off."""

    def __init__(self, directory: str | Path | None, role: str) -> None:
        self._file = None
        self._lock = threading.Lock()
        if directory:
            path = Path(directory)
            path.mkdir(parents=True, exist_ok=True)
            # Line-buffered text in append mode: each event is one write(2) of one line.
            # Host and pid: in containers every role's process may be pid 1.
            name = f"{role}-{socket.gethostname()}-{os.getpid()}.jsonl"
            self._file = (path / name).open("a", buffering=1)

    @classmethod
    def from_env(cls, role: str) -> Ledger:
        """The ledger ``MEMUP_LEDGER`` names (off when it is unset or empty)."""
        return cls(os.environ.get(ENV) or None, role)

    @property
    def on(self) -> bool:
        """Whether events are recorded."""
        return self._file is not None

    def record(self, event: str, **fields: Any) -> None:
        """Appends one event (a no-op when the ledger is off)."""
        if self._file is None:
            return
        line = json.dumps({"e": event, "t": round(time.time(), 3), **fields})
        with self._lock:
            self._file.write(line + "\n")

    def episodes(self, event: str, episodes: list[str], **fields: Any) -> None:
        """One ``event`` per episode id."""
        for episode in episodes:
            self.record(event, ep=episode, **fields)


def read_events(directory: str | Path) -> list[dict[str, Any]]:
    """Every event of every process's file, oldest first (a torn last line is skipped)."""
    events = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # the line a kill -9 cut short
    events.sort(key=lambda e: e.get("t", 0.0))
    return events


def _stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Figures:
    """What the ledger proves about a run (see :func:`figures`)."""

    produced: int  #: episodes that reached the episodes stream
    scored: int  #: of those, admitted to the replay window by a scorer
    ppo_owned: int  #: produced after the ppo group began: each must be trained or dropped
    trained: int  #: distinct episodes PPO trained on in updates the run kept
    dropped: int  #: dropped on purpose (stale) and counted
    lost: int  #: produced and never scored (phase I) nor trained or dropped (PPO's)
    unconsumed: int  #: PPO's, newer than the last update's episodes: waiting when it ended
    trained_twice: int  #: episodes trained more than once in updates the run kept
    rolled_back: int  #: trainings undone by a restart from an older checkpoint
    incarnations: int  #: learner processes that trained
    sampled_episodes: int  #: distinct episodes MemUP segments were drawn from

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def figures(directory: str | Path, *, grace_s: float = 0.0) -> Figures:
    """The ledger's figures for one run.

    An update of incarnation A counts ("kept") unless a later incarnation resumed from a
    checkpoint older than it: then its training is rolled back (``rolled_back``), and the
    episode counts once when it is trained again, or as lost when it never is. The server
    hands PPO's episodes out in stream order, so one neither trained nor dropped is lost
    only if it is older than the oldest episode of the last kept update; newer ones were
    still waiting when the run ended (``unconsumed``). Episodes produced in the last
    ``grace_s`` seconds before the newest event are not yet due at a scorer and are left
    out of ``lost``.
    """
    events = read_events(directory)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_kind[e["e"]].append(e)
    end = events[-1]["t"] if events else 0.0
    produced = {e["ep"]: e for e in by_kind["produced"]}
    scored = {e["ep"] for e in by_kind["scored"]}
    dropped = {e["ep"] for e in by_kind["dropped"]}
    starts = [_stream_order(e["id"]) for e in by_kind["ppo_start"]]
    ppo_from = min(starts) if starts else None
    # Which updates each incarnation kept: up to where the next one resumed.
    resumed = [(e["t"], e["inc"], int(e["u"])) for e in by_kind["resumed"]]
    kept_up_to: dict[str, float] = {}
    for (_, inc, _), nxt in zip(resumed, [*resumed[1:], None]):
        kept_up_to[inc] = float("inf") if nxt is None else nxt[2]
    times: Counter[str] = Counter()
    rolled_back = 0
    last: tuple[str, int] = ("", -1)  # the newest kept update: (incarnation, update)
    for e in by_kind["trained"]:
        if int(e["u"]) <= kept_up_to.get(e["inc"], float("inf")):
            times[e["ep"]] += 1
            last = (e["inc"], int(e["u"]))
        else:
            rolled_back += 1
    ppo_owned = {ep for ep, e in produced.items()
                 if ppo_from is not None and _stream_order(e["id"]) > ppo_from}
    last_batch = [_stream_order(produced[e["ep"]]["id"]) for e in by_kind["trained"]
                  if (e["inc"], int(e["u"])) == last and e["ep"] in produced]
    cutoff = min(last_batch) if last_batch else (0, 0)
    untrained = {ep for ep in ppo_owned if ep not in times and ep not in dropped}
    waiting = {ep for ep in untrained if _stream_order(produced[ep]["id"]) >= cutoff}
    due = {ep for ep, e in produced.items() if e["t"] <= end - grace_s}
    lost = {ep for ep in due - ppo_owned if ep not in scored} | (untrained - waiting)
    return Figures(
        produced=len(produced), scored=len(scored & produced.keys()), ppo_owned=len(ppo_owned),
        trained=len(times), dropped=len(dropped), lost=len(lost), unconsumed=len(waiting),
        trained_twice=sum(1 for n in times.values() if n > 1), rolled_back=rolled_back,
        incarnations=len({e["inc"] for e in by_kind["trained"]}),
        sampled_episodes=len({e["ep"] for e in by_kind["sampled"]}))
