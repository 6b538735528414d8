"""ZeroMQ CURVE: encryption and authentication of the segment feed, from a key directory.

Off unless ``zmq.curve_keys`` names a directory. Layout (``memup keys DIR`` creates it)::

    DIR/server.key_secret      every scorer's key pair (scorers share one server identity)
    DIR/server.key             its public half, which learners need
    DIR/learner.key_secret     a learner's key pair
    DIR/clients/*.key          public keys of the learners scorers accept

A learner whose public key is not in ``clients/`` completes no handshake: the ZAP handler
refuses it and not one frame reaches the segment server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class CurveError(RuntimeError):
    """The key directory is missing a file CURVE needs, or libzmq lacks CURVE."""


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveError(f"CURVE key file {path} is missing: create the keys with "
                         f"`memup keys {path.parent}` or fix zmq.curve_keys")
    return zmq.auth.load_certificate(str(path))


def create_keys(directory: str | Path) -> Path:
    """Creates the key directory (server pair, one learner pair, the learner allowed)."""
    if not zmq.has("curve"):
        raise CurveError("this libzmq was built without CURVE support")
    out = Path(directory)
    (out / "clients").mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(out), "server")
    public, _ = zmq.auth.create_certificates(str(out), "learner")
    shutil.copy(public, out / "clients" / "learner.key")
    return out


def secure_server(sock: zmq.Socket, ctx: zmq.Context, directory: str) -> ThreadAuthenticator:
    """Makes ``sock`` a CURVE server accepting only ``clients/*.key``; returns the ZAP
    authenticator thread (stop it when the socket closes). Call before ``bind``."""
    keys = Path(directory)
    public, secret = _load(keys / "server.key_secret")
    if not (keys / "clients").is_dir():
        raise CurveError(f"{keys}/clients/ (the accepted learners' public keys) is missing")
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys / "clients"))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth


def secure_client(sock: zmq.Socket, directory: str) -> None:
    """Gives ``sock`` the learner's key pair and the scorers' public key. Before ``connect``."""
    keys = Path(directory)
    public, secret = _load(keys / "learner.key_secret")
    server_public, _ = _load(keys / "server.key")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
