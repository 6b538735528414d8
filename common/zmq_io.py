"""ZeroMQ sockets of the segment feed, with every bound set: HWM, max message size, linger,
ZMTP heartbeats, reconnect backoff.

The learner's DEALER connects to every scorer's ROUTER. ZeroMQ itself promises no
delivery (messages vanish on reconnects and at HWM), so reliability lives above it:
credit, acks and re-requests; these options only keep every queue and wait bounded.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from common.curve import CurveServer, secure_client, secure_server

HWM = 1000
"""Messages queued per peer before ZeroMQ blocks (DEALER) or drops (ROUTER)."""
HEARTBEAT_MS = 1000
"""ZMTP ping interval; a peer silent for 3 intervals is disconnected."""
RECONNECT_MS = 100
RECONNECT_MAX_MS = 5000
_GUARDS: dict[int, CurveServer] = {}  # by id() of the CURVE server socket


def _common(sock: zmq.Socket, max_message_bytes: int) -> zmq.Socket:
    sock.setsockopt(zmq.LINGER, 0)  # a closing role never hangs on unsent frames
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)  # larger frames drop the connection
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 3 * HEARTBEAT_MS)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
    return sock


def router(ctx: zmq.Context, host: str, port: int, max_message_bytes: int,
           curve_keys: str = "", on_denied: Callable[[], None] | None = None
           ) -> tuple[zmq.Socket, int]:
    """A ROUTER bound to ``tcp://host:port`` (port 0: a free one); returns it and its port.

    With ``curve_keys`` (a key directory), only learners with an accepted key connect; every
    other peer's handshake fails, so it sends and receives nothing, and ``on_denied()`` is
    called once per refused handshake (from a background thread; e.g. a counter's ``inc``).
    Without CURVE nothing is refused and ``on_denied`` is never called.
    """
    sock = _common(ctx.socket(zmq.ROUTER), max_message_bytes)
    if curve_keys:
        _GUARDS[id(sock)] = secure_server(sock, ctx, curve_keys, on_denied)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished peer raises, not vanishes
    if port == 0:
        port = sock.bind_to_random_port(f"tcp://{host}")
    else:
        sock.bind(f"tcp://{host}:{port}")
    return sock, port


def dealer(ctx: zmq.Context, max_message_bytes: int, curve_keys: str = "") -> zmq.Socket:
    """A DEALER, to be connected to every live scorer endpoint (CURVE with ``curve_keys``)."""
    sock = _common(ctx.socket(zmq.DEALER), max_message_bytes)
    if curve_keys:
        secure_client(sock, curve_keys)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only to completed connections, not dead ones
    return sock


def close(sock: zmq.Socket) -> None:
    """Closes a socket made here (and stops its CURVE threads, if any)."""
    guard = _GUARDS.pop(id(sock), None)
    if guard is not None:
        guard.stop()  # first: it turns the socket's monitor off
    sock.close(0)
