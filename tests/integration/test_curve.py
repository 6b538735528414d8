"""CURVE on the segment feed: an accepted learner talks to a scorer, an unknown one cannot."""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.auth

from common.curve import create_keys
from common.zmq_io import close, dealer, router


def test_only_learners_with_an_accepted_key_reach_the_server(tmp_path: Path) -> None:
    keys = create_keys(tmp_path / "curve")
    ctx = zmq.Context()
    server, port = router(ctx, "127.0.0.1", 0, 1 << 20, str(keys))
    try:
        good = dealer(ctx, 1 << 20, str(keys))
        good.connect(f"tcp://127.0.0.1:{port}")
        good.send(b"hello")
        assert server.poll(5000), "the accepted learner's frame never arrived"
        peer, frame = server.recv_multipart()
        assert frame == b"hello"
        server.send_multipart([peer, b"welcome"])
        assert good.poll(5000) and good.recv() == b"welcome"

        # Same server key, but a key pair the server was never told about.
        stranger_dir = tmp_path / "stranger"
        stranger_dir.mkdir()
        zmq.auth.create_certificates(str(stranger_dir), "learner")
        (stranger_dir / "server.key").write_bytes((keys / "server.key").read_bytes())
        bad = dealer(ctx, 1 << 20, str(stranger_dir))
        bad.connect(f"tcp://127.0.0.1:{port}")
        bad.send(b"let me in", flags=zmq.NOBLOCK) if bad.poll(0, zmq.POLLOUT) else None
        assert not server.poll(2000), "a frame from an unlisted key reached the server"

        # No CURVE at all: nothing either.
        plain = ctx.socket(zmq.DEALER)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(f"tcp://127.0.0.1:{port}")
        plain.send(b"plain", flags=zmq.NOBLOCK)
        assert not server.poll(1000), "a plaintext frame reached a CURVE server"
        for s in (good, bad, plain):
            s.close(0)
    finally:
        close(server)
        ctx.term()
