"""A background poller that fetches newly published weights, off the caller's hot loop.

Actors and scorers must never wait on Redis inside their loops: the watcher polls the
version (one ``HGET``), fetches and verifies newer weights in its own thread, and leaves
them for the loop to :meth:`take` between steps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
import torch

from common.weights import WeightsError, fetch_weights

log = logging.getLogger(__name__)


class WeightsWatcher(threading.Thread):
    """Polls ``weights:{name}`` every ``poll_s`` seconds; the newest result waits in a slot.

    Args:
        r: a Redis client (used only by this thread).
        run: the run id.
        name: the weights name (``policy``, ``detector``).
        poll_s: seconds between polls.
        on_error: called with a short kind (``redis``, ``corrupt``) on each failed poll.
    """

    def __init__(self, r: redis.Redis, run: str, name: str, poll_s: float,
                 on_error: Callable[[str], None] | None = None) -> None:
        super().__init__(name=f"weights-{name}", daemon=True)
        self.r, self.run_id, self.weights_name, self.poll_s = r, run, name, poll_s
        self.on_error = on_error
        self.known = 0
        self._slot: tuple[int, dict[str, torch.Tensor]] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def take(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        """The newest fetched weights not taken yet, or None."""
        with self._lock:
            slot, self._slot = self._slot, None
        return slot

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                found = fetch_weights(self.r, self.run_id, self.weights_name, self.known)
            except redis.RedisError as exc:
                self._failed("redis", exc)
            except WeightsError as exc:  # torn or tampered: keep the old weights, say so
                self._failed("corrupt", exc)
            else:
                if found is not None:
                    self.known = found[0]
                    with self._lock:
                        self._slot = found
            self._stopping.wait(self.poll_s)

    def _failed(self, kind: str, exc: Exception) -> None:
        log.warning("fetching %s weights failed (%s): %s", self.weights_name, kind, exc)
        if self.on_error is not None:
            self.on_error(kind)
