"""ZeroMQ sockets of the segment feed, with every bound set: HWM, max message size, linger,
ZMTP heartbeats, reconnect backoff.

The learner's DEALER connects to every scorer's ROUTER. ZeroMQ itself promises no
delivery (messages vanish on reconnects and at HWM), so reliability lives above it:
credit, acks and re-requests; these options only keep every queue and wait bounded.
"""

from __future__ import annotations

import zmq

HWM = 1000
"""Messages queued per peer before ZeroMQ blocks (DEALER) or drops (ROUTER)."""
HEARTBEAT_MS = 1000
"""ZMTP ping interval; a peer silent for 3 intervals is disconnected."""
RECONNECT_MS = 100
RECONNECT_MAX_MS = 5000


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


def router(ctx: zmq.Context, host: str, port: int, max_message_bytes: int
           ) -> tuple[zmq.Socket, int]:
    """A ROUTER bound to ``tcp://host:port`` (port 0: a free one); returns it and its port."""
    sock = _common(ctx.socket(zmq.ROUTER), max_message_bytes)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished peer raises, not vanishes
    if port == 0:
        port = sock.bind_to_random_port(f"tcp://{host}")
    else:
        sock.bind(f"tcp://{host}:{port}")
    return sock, port


def dealer(ctx: zmq.Context, max_message_bytes: int) -> zmq.Socket:
    """A DEALER, to be connected to every live scorer endpoint."""
    sock = _common(ctx.socket(zmq.DEALER), max_message_bytes)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only to completed connections, not dead ones
    return sock
