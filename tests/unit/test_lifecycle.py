"""Backoff, StopSignal, HeartbeatThread and RateLimitedLog."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time

import pytest

from common.lifecycle import Backoff, HeartbeatThread, RateLimitedLog, StopSignal


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0, factor=2.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.failures == 0 and backoff.next() == pytest.approx(0.1)


def test_backoff_jitter_stays_in_bounds_and_varies() -> None:
    backoff = Backoff(base=1.0, cap=100.0, factor=1.0, jitter=0.25, rng=random.Random(0))
    delays = [backoff.next() for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays)
    assert max(delays) - min(delays) > 0.3  # actually jittered
    capped = Backoff(base=8.0, cap=8.0, jitter=0.5, rng=random.Random(1))
    assert all(4.0 <= capped.next() <= 8.0 for _ in range(100))


def test_backoff_survives_many_failures() -> None:
    backoff = Backoff(base=0.1, cap=5.0, jitter=0.0)
    for _ in range(5000):  # base * 2**5000 would overflow a float
        delay = backoff.next()
    assert delay == 5.0


def test_backoff_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(base=2.0, cap=1.0)
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


def test_stop_signal_on_sigterm_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignal() as stop:
        assert stop.installed and not stop.is_set()
        assert signal.getsignal(signal.SIGTERM) != before[0]
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2.0)
        assert stop.is_set() and stop.event.wait(2.0)
        assert stop.received == signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_second_sigint_goes_to_the_previous_handler() -> None:
    calls: list[int] = []

    def previous(signum: int, frame: object) -> None:
        calls.append(signum)

    original = signal.signal(signal.SIGINT, previous)
    try:
        with StopSignal() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.wait(2.0) and calls == []
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert calls == [signal.SIGINT]  # force-quit path: the old handler got it
            assert signal.getsignal(signal.SIGINT) is previous
        assert signal.getsignal(signal.SIGINT) is previous
    finally:
        signal.signal(signal.SIGINT, original)


def test_stop_signal_outside_main_thread_is_a_noop_install() -> None:
    before = signal.getsignal(signal.SIGTERM)
    results: list[bool] = []
    stop = StopSignal()

    def install() -> None:
        results.append(stop.install().installed)
        stop.set()

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert results == [False] and signal.getsignal(signal.SIGTERM) is before
    assert stop.is_set() and stop.wait(0)


def test_stop_signal_wait_times_out_without_request() -> None:
    stop = StopSignal()
    start = time.monotonic()
    assert stop.wait(0.05) is False
    assert time.monotonic() - start >= 0.04


def test_heartbeat_beats_and_counts_failures() -> None:
    beats: list[float] = []
    errors: list[BaseException] = []

    def beat() -> None:
        beats.append(time.monotonic())
        if len(beats) % 2 == 0:
            raise ConnectionError("redis down")

    heartbeat = HeartbeatThread(beat, interval=0.02, on_error=errors.append, name="hb-test")
    heartbeat.start()
    deadline = time.monotonic() + 2
    while len(beats) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    heartbeat.stop()
    assert not heartbeat.is_alive() and heartbeat.daemon
    count = len(beats)
    assert count >= 6
    assert heartbeat.failures == count // 2 and heartbeat.beats == count - count // 2
    assert len(errors) == heartbeat.failures and isinstance(errors[0], ConnectionError)
    time.sleep(0.05)
    assert len(beats) == count  # no beat after stop()


def test_heartbeat_survives_a_failing_error_callback() -> None:
    def on_error(exc: BaseException) -> None:
        raise RuntimeError("callback bug")

    heartbeat = HeartbeatThread(lambda: 1 / 0, interval=0.01, on_error=on_error)
    heartbeat.start()
    time.sleep(0.05)
    assert heartbeat.is_alive()
    heartbeat.stop()
    assert heartbeat.failures >= 2


def test_rate_limited_log_suppresses_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), interval=10.0,
                             clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        assert limited.warning("malformed", "rejected frame: %s", "malformed")
        assert not limited.warning("malformed", "rejected frame: %s", "malformed")
        assert not limited.warning("malformed", "rejected frame: %s", "malformed")
        assert limited.warning("too_large", "rejected frame: %s", "too_large")  # own key
        now[0] += 10.0
        assert limited.warning("malformed", "rejected frame: %s", "malformed")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["rejected frame: malformed", "rejected frame: too_large",
                        "rejected frame: malformed (2 similar suppressed)"]
    assert limited.suppressed == {"malformed": 2}
