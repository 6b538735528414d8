"""ZeroMQ CURVE: encryption and authentication of the segment feed, from a key directory.

Off unless ``zmq.curve_keys`` names a directory. Layout (``memup keys DIR`` creates it)::

    DIR/server.key_secret      every scorer's key pair (scorers share one server identity)
    DIR/server.key             its public half, which learners need
    DIR/learner.key_secret     a learner's key pair
    DIR/clients/*.key          public keys of the learners scorers accept

A learner whose public key is not in ``clients/`` completes no handshake: the ZAP handler
refuses it and not one frame reaches the segment server. Each refused handshake is
reported to the server's ``on_denied`` callback (the scorer counts them as
``memup_scorer_auth_failures_total``).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from common.lifecycle import RateLimitedLog

log = logging.getLogger(__name__)

# Why a handshake failed, by monitor event. A peer without CURVE (plaintext, or another
# mechanism) fails in the ZMTP greeting and never reaches the ZAP handler, so the socket's
# own handshake events are watched rather than the ZAP replies alone.
DENIALS = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "a key the scorers do not accept",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "no CURVE, or a broken handshake",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "a handshake that failed",
}
_POLL_MS = 100  # how soon the watch thread notices stop()


class CurveError(RuntimeError):
    """The key directory is missing a file CURVE needs, or libzmq lacks CURVE."""


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveError(f"CURVE key file {path} is missing: create the keys with "
                         f"`memup keys {path.parent}` or fix zmq.curve_keys")
    return zmq.auth.load_certificate(str(path))


def create_keys(directory: str | Path) -> Path:
    """Creates the key directory (server pair, one learner pair, the learner allowed).

    Secret key files are made readable by their owner only (pyzmq writes them 0644).
    """
    if not zmq.has("curve"):
        raise CurveError("this libzmq was built without CURVE support")
    out = Path(directory)
    (out / "clients").mkdir(parents=True, exist_ok=True)
    _, server_secret = zmq.auth.create_certificates(str(out), "server")
    public, learner_secret = zmq.auth.create_certificates(str(out), "learner")
    for secret in (server_secret, learner_secret):
        Path(secret).chmod(0o600)
    shutil.copy(public, out / "clients" / "learner.key")
    return out


class CurveServer:
    """What guards one CURVE server socket: the ZAP handler thread (accepts
    ``clients/*.key``) and a thread watching the socket's handshakes, which calls
    ``on_denied()`` once per refused one. :meth:`stop` both before closing the socket."""

    def __init__(self, sock: zmq.Socket, ctx: zmq.Context, clients: Path,
                 on_denied: Callable[[], None] | None) -> None:
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(clients))
        self.on_denied = on_denied
        self.denied = 0  #: handshakes refused so far
        self._sock = sock
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        self._stop = threading.Event()
        self._said = RateLimitedLog(log, interval=30.0)
        self._thread = threading.Thread(target=self._watch, name="curve-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._monitor.poll(_POLL_MS):
                    continue
                event = recv_monitor_message(self._monitor)["event"]
            except zmq.ZMQError:  # the context is going away
                return
            why = DENIALS.get(event)
            if why is None:
                continue
            self.denied += 1
            self._said.warning(str(event), "refused a ZeroMQ peer on the segment server: %s "
                               "(memup_scorer_auth_failures_total counts them)", why)
            if self.on_denied is not None:
                try:
                    self.on_denied()
                except Exception:  # a broken callback must not end the watch
                    log.exception("the on_denied callback of the CURVE server failed")

    def stop(self) -> None:
        """Stops the watch and the ZAP handler; call it before closing the socket."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:  # the socket is already closed
            pass
        self._monitor.close(0)
        self.auth.stop()


def secure_server(sock: zmq.Socket, ctx: zmq.Context, directory: str,
                  on_denied: Callable[[], None] | None = None) -> CurveServer:
    """Makes ``sock`` a CURVE server accepting only ``clients/*.key``. Call before ``bind``.

    Args:
        sock: the server socket (the scorer's ROUTER).
        ctx: its context (the ZAP handler binds its well-known inproc address there).
        directory: the key directory (``zmq.curve_keys``).
        on_denied: called, from a background thread, once for each refused handshake (a
            peer without CURVE or with a key not in ``clients/``), e.g. a counter's ``inc``.

    Returns:
        The guard; ``.stop()`` it before closing the socket.
    """
    keys = Path(directory)
    public, secret = _load(keys / "server.key_secret")
    if not (keys / "clients").is_dir():
        raise CurveError(f"{keys}/clients/ (the accepted learners' public keys) is missing")
    guard = CurveServer(sock, ctx, keys / "clients", on_denied)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return guard


def secure_client(sock: zmq.Socket, directory: str) -> None:
    """Gives ``sock`` the learner's key pair and the scorers' public key. Before ``connect``."""
    keys = Path(directory)
    public, secret = _load(keys / "learner.key_secret")
    server_public, _ = _load(keys / "server.key")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
