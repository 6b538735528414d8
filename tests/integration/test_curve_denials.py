"""CURVE refusals are counted: real sockets against a scorer-style ROUTER.

A DEALER without CURVE and one whose key the scorers were never given get no reply (their
frames never reach the server) and each raises ``memup_scorer_auth_failures_total``; the
learner with the accepted key is served, and counts nothing.
"""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth

from common.curve import create_keys
from common.metrics import ScorerMetrics
from common.zmq_io import close, dealer, router

COUNTER = "memup_scorer_auth_failures_total"


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Server:
    """A ROUTER with CURVE on, answering every frame with ``b"reply:" + frame``."""

    def __init__(self, ctx: zmq.Context, keys: Path) -> None:
        self.metrics = ScorerMetrics()
        self.sock, self.port = router(ctx, "127.0.0.1", 0, 1 << 20, str(keys),
                                      on_denied=self.metrics.auth_failures_total.inc)
        self.received: list[bytes] = []

    @property
    def failures(self) -> float:
        return self.metrics.registry.get_sample_value(COUNTER) or 0.0

    def answer(self, timeout_ms: int, frames: int | None = None) -> None:
        """Answers what arrives within ``timeout_ms`` (stops early after ``frames``)."""
        deadline = time.monotonic() + timeout_ms / 1000
        answered = 0
        while (left := deadline - time.monotonic()) > 0 and answered != frames:
            if self.sock.poll(int(left * 1000) + 1):
                peer, frame = self.sock.recv_multipart()
                self.received.append(frame)
                self.sock.send_multipart([peer, b"reply:" + frame])
                answered += 1


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.term()  # hangs if a socket (the monitor's too) was left open


def _client(ctx: zmq.Context, port: int, keys: Path | None) -> zmq.Socket:
    sock = dealer(ctx, 1 << 20, str(keys)) if keys else ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def _stranger(tmp_path: Path, keys: Path) -> Path:
    """A key pair the scorers were never given, with their real public key."""
    own = tmp_path / "stranger"
    own.mkdir()
    zmq.auth.create_certificates(str(own), "learner")
    (own / "server.key").write_bytes((keys / "server.key").read_bytes())
    return own


def test_refused_peers_get_nothing_and_are_counted(ctx: zmq.Context, tmp_path: Path) -> None:
    keys = create_keys(tmp_path / "curve")
    server = Server(ctx, keys)
    sockets: list[zmq.Socket] = []
    try:
        # The learner: served, and nothing is counted.
        learner = _client(ctx, server.port, keys)
        sockets.append(learner)
        learner.send(b"learner")
        server.answer(5000, frames=1)
        assert learner.poll(3000) and learner.recv() == b"reply:learner"
        assert server.failures == 0

        # No CURVE at all: the greeting fails before any ZAP request; counted all the same.
        plain = _client(ctx, server.port, None)
        sockets.append(plain)
        plain.send(b"plain", flags=zmq.NOBLOCK)
        assert _wait(lambda: server.failures >= 1), "a plaintext peer was not counted"
        server.answer(500)
        assert not plain.poll(500), "a plaintext peer got a reply"

        # An unlisted key: the ZAP handler refuses it.
        plain.close(0)
        sockets.remove(plain)
        time.sleep(0.3)  # the plaintext peer's last reconnect attempts settle
        before = server.failures
        bad = _client(ctx, server.port, _stranger(tmp_path, keys))
        sockets.append(bad)
        if bad.poll(0, zmq.POLLOUT):  # no completed handshake: nothing to send on
            bad.send(b"stranger", flags=zmq.NOBLOCK)
        assert _wait(lambda: server.failures > before), "an unlisted key was not counted"
        server.answer(500)
        assert not bad.poll(500), "a peer with an unlisted key got a reply"

        assert server.received == [b"learner"], "a refused peer's frame reached the server"
        # The learner is still served after the refusals.
        learner.send(b"again")
        server.answer(5000, frames=1)
        assert learner.poll(3000) and learner.recv() == b"reply:again"
    finally:
        for s in sockets:
            s.close(0)
        close(server.sock)
    assert not [t for t in threading.enumerate() if t.name == "curve-watch"], (
        "close() left the handshake watch running")


def test_without_curve_nothing_is_refused_or_counted(ctx: zmq.Context) -> None:
    calls: list[int] = []
    sock, port = router(ctx, "127.0.0.1", 0, 1 << 20, "", on_denied=lambda: calls.append(1))
    plain = _client(ctx, port, None)
    try:
        plain.send(b"hello")
        assert sock.poll(3000) and sock.recv_multipart()[1] == b"hello"
        assert calls == []
    finally:
        plain.close(0)
        close(sock)


def test_secret_keys_are_private(tmp_path: Path) -> None:
    keys = create_keys(tmp_path / "curve")
    for name in ("server.key_secret", "learner.key_secret"):
        mode = stat.S_IMODE((keys / name).stat().st_mode)
        assert mode == 0o600, f"{name}: {oct(mode)}"
    for name in ("server.key", "clients/learner.key"):
        assert (keys / name).is_file()
