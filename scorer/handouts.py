"""What the segment server has handed to the learner and not yet had acknowledged.

Every hand-out is leased to one learner *incarnation* (a random id each learner process
sends with its requests). The lease is renewed by every request of that incarnation. It
ends when the incarnation stays silent for ``lease_s`` (killed, frozen, partitioned) or
when a request of another incarnation arrives (the learner was restarted): then every
rollout it held goes back to the ``returned`` queue, served first to the next learner with
credit, and its credit is forgotten. So nothing stays pending to a peer that is gone, and
the actors' backlog counts only what is really waiting.
"""

from __future__ import annotations

import time
from collections import OrderedDict

Fields = dict[bytes, bytes]


class Handouts:
    """The rollouts leased to the current learner incarnation, and those it gave back."""

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self.holder = ""  #: the incarnation holding the lease ("" : none)
        self.renewed = 0.0  #: monotonic time of the holder's newest request
        #: rollout id -> (peer, time sent, the stream entry's fields to load it again)
        self.in_flight: dict[str, tuple[bytes, float, Fields]] = {}
        self.returned: OrderedDict[str, Fields] = OrderedDict()
        self.credit: dict[bytes, tuple[int, int, int]] = {}  # peer -> credit, version, max_lag

    def claim(self, incarnation: str, now: float | None = None) -> int:
        """Renews the lease of ``incarnation``; a new one first releases its predecessor's
        hand-outs. Returns how many rollouts were released (0 when nothing changed hands)."""
        released = 0
        if incarnation != self.holder:
            released = self.release()
            self.holder = incarnation
        self.renewed = time.monotonic() if now is None else now
        return released

    def expired(self, now: float | None = None) -> bool:
        """Whether the holder has been silent past its lease while holding something."""
        now = time.monotonic() if now is None else now
        return bool(self.holder) and now - self.renewed > self.lease_s and bool(
            self.in_flight or self.credit)

    def release(self) -> int:
        """Takes everything back from the holder: its rollouts wait in ``returned`` (oldest
        first), its credit is dropped. Returns how many rollouts came back."""
        count = len(self.in_flight)
        for entry_id, (_, _, fields) in sorted(self.in_flight.items()):
            self.returned[entry_id] = fields
        self.in_flight.clear()
        self.credit.clear()
        self.holder = ""
        return count

    def hand(self, entry_id: str, peer: bytes, fields: Fields, now: float | None = None) -> None:
        """Records that ``entry_id`` was sent to ``peer``."""
        self.returned.pop(entry_id, None)
        self.in_flight[entry_id] = (peer, time.monotonic() if now is None else now, fields)

    def acked(self, ids: list[str]) -> list[str]:
        """Forgets the acknowledged ``ids`` this server handed out or took back; returns
        them (ids it never handed out are ignored: a peer cannot ack others' entries)."""
        held = []
        for entry_id in ids:
            if self.in_flight.pop(entry_id, None) is not None or \
                    self.returned.pop(entry_id, None) is not None:
                held.append(entry_id)
        return held

    def overdue(self, before: float) -> list[tuple[str, bytes, Fields]]:
        """Rollouts sent before ``before`` and still unacknowledged (lost in the hop?)."""
        return [(entry_id, peer, fields) for entry_id, (peer, sent, fields)
                in self.in_flight.items() if sent < before]

    def known(self, entry_id: str) -> bool:
        """Whether ``entry_id`` is in flight or waiting to be sent again."""
        return entry_id in self.in_flight or entry_id in self.returned
