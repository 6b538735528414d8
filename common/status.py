"""Live numbers of every replica, kept in Redis with a TTL, for the status view and liveness.

Each role writes a small hash of its own counters every second (a heartbeat: a replica
whose hash expired is dead or frozen); ``memup up`` reads them all to draw its status view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

import redis

from common.keys import status_key, status_pattern
from common.lifecycle import HeartbeatThread


def status_beat(r: redis.Redis, run: str, consumer: str, read: Callable[[], Mapping[str, float]],
                ttl_s: float = 5.0) -> Callable[[], None]:
    """A heartbeat function writing ``read()`` (plus the time) under the replica's status key."""
    key = status_key(run, consumer)

    def beat() -> None:
        payload = json.dumps({"time": time.time(), **read()})
        r.set(key, payload, px=int(ttl_s * 1000))

    return beat


def start_status(r: redis.Redis, run: str, consumer: str, read: Callable[[], Mapping[str, float]],
                 interval_s: float = 1.0) -> HeartbeatThread:
    """Starts the status heartbeat thread of one replica (stop it with ``.stop()``)."""
    thread = HeartbeatThread(status_beat(r, run, consumer, read, ttl_s=5 * interval_s),
                             interval=interval_s, name=f"status-{consumer}")
    thread.start()
    return thread


def read_statuses(r: redis.Redis, run: str) -> dict[str, dict[str, float]]:
    """Every live replica's status, by consumer name (``actor-0``, ``scorer-0``, ...)."""
    keys = sorted(r.scan_iter(match=status_pattern(run), count=100))
    out: dict[str, dict[str, float]] = {}
    for key, raw in zip(keys, r.mget(keys) if keys else []):
        if raw is None:
            continue
        try:
            out[key.decode().rsplit(":", 1)[1]] = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # a foreign or torn value: the next beat replaces it
    return out
