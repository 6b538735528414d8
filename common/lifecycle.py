"""What every long-running role needs around its main loop: backoff between retries, a
graceful stop on SIGINT/SIGTERM, a heartbeat thread, and warnings that cannot flood a log.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff: ``base``, ``base * factor``, ... up to ``cap`` seconds.

    Each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]`` (and then
    capped) so replicas that failed together do not retry in lockstep.
    """

    def __init__(self, base: float = 0.1, cap: float = 10.0, factor: float = 2.0,
                 jitter: float = 0.1, rng: random.Random | None = None) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"need 0 < base <= cap, got base={base}, cap={cap}")
        if factor < 1 or not 0 <= jitter < 1:
            raise ValueError(f"need factor >= 1 and 0 <= jitter < 1, got {factor}, {jitter}")
        self.base, self.cap, self.factor, self.jitter = base, cap, factor, jitter
        self._rng = rng or random.Random()
        self._failures = 0
        self._delay = base

    @property
    def failures(self) -> int:
        """How many delays were handed out since the last :meth:`reset`."""
        return self._failures

    def next(self) -> float:
        """The delay before the next attempt, in seconds; each call counts one failure."""
        delay = self._delay * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        # Grow the undithered delay separately: base * factor**n overflows for large n.
        self._delay = min(self.cap, self._delay * self.factor)
        self._failures += 1
        return min(self.cap, delay)

    def reset(self) -> None:
        """Back to ``base`` after a success."""
        self._failures = 0
        self._delay = self.base


class StopSignal:
    """A stop request from SIGINT/SIGTERM (or from code via :meth:`set`).

    The first signal sets the event and the role finishes its current step, flushes and
    exits. A second SIGINT restores the previous handler and hands it that signal, so a
    user can force-quit with Ctrl-C twice. Handlers are installed only from the main
    thread (Python allows no other); elsewhere :meth:`install` does nothing and the
    event is only set by :meth:`set`.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self._signals = tuple(signals)
        self._event = threading.Event()
        self._requested = False
        self._previous: dict[int, Any] = {}
        self.received: int | None = None
        """The first signal received, if any."""

    @property
    def event(self) -> threading.Event:
        """The event set on a stop request (to hand to loops that wait on it)."""
        return self._event

    @property
    def installed(self) -> bool:
        """Whether this object's handlers are installed."""
        return bool(self._previous)

    def install(self) -> StopSignal:
        """Installs the handlers (main thread only; a no-op elsewhere or when installed)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return self
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Puts the handlers that were there before :meth:`install` back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._requested and signum == signal.SIGINT:
            previous = self._previous.pop(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGINT, previous)
            log.warning("second SIGINT: forcing quit")
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)
            return
        self._requested = True
        if self.received is None:
            self.received = signum
        log.info("received %s: stopping after the current step", signal.Signals(signum).name)
        # Event.set() takes the event's lock, which the interrupted main thread may hold
        # (inside Event.wait): set it from another thread to avoid a self-deadlock.
        threading.Thread(target=self._event.set, name="stop-signal", daemon=True).start()

    def set(self) -> None:
        """Requests a stop from code."""
        self._requested = True
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._requested or self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits up to ``timeout`` seconds for a stop request; True when one came."""
        return self._requested or self._event.wait(timeout)

    def __enter__(self) -> StopSignal:
        return self.install()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()


class HeartbeatThread(threading.Thread):
    """Daemon thread calling ``beat()`` at once, then every ``interval`` seconds until
    :meth:`stop`.

    ``beat`` typically refreshes a key with a TTL (``SET key value EX ttl``): a scorer's
    endpoint or a role's liveness key, which expires on its own when the process dies.
    A failing beat is counted in :attr:`failures` and passed to ``on_error``; the thread
    keeps beating, since Redis may come back before the TTL runs out.
    """

    def __init__(self, beat: Callable[[], None], interval: float, *,
                 on_error: Callable[[BaseException], None] | None = None,
                 name: str = "heartbeat") -> None:
        super().__init__(name=name, daemon=True)
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval}")
        self._beat = beat
        self.interval = interval
        self._on_error = on_error
        self._stopping = threading.Event()
        self.beats = 0
        """Successful beats."""
        self.failures = 0
        """Beats that raised."""

    def run(self) -> None:
        while True:
            try:
                self._beat()
                self.beats += 1
            except Exception as exc:  # a beat must never kill the thread
                self.failures += 1
                if self._on_error is not None:
                    try:
                        self._on_error(exc)
                    except Exception:
                        log.exception("heartbeat %s: on_error callback failed", self.name)
            if self._stopping.wait(self.interval):
                return

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stops beating and waits for the thread (a beat in progress completes)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)


class RateLimitedLog:
    """Logs each key at most once per ``interval`` seconds and counts what it suppressed.

    Keys must come from a bounded set (e.g. a rejection reason), never from the data.
    The next message logged for a key says how many were suppressed before it.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._since_last: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        """Messages suppressed per key since creation."""
        self._lock = threading.Lock()

    def log(self, key: str, level: int, msg: str, *args: object) -> bool:
        """Logs ``msg % args`` at ``level`` unless ``key`` was logged in the last
        ``interval`` seconds; returns whether it was logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._since_last[key] += 1
                self.suppressed[key] += 1
                return False
            self._last[key] = now
            skipped = self._since_last.pop(key, 0)
        if skipped:
            msg += " (%d similar suppressed)"
            args = (*args, skipped)
        self._logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(key, logging.WARNING, msg, *args)
