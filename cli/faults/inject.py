"""The fault injector: the processes of one run, and the faults done to them.

Every process is found by its command line, which carries the run directory
(``--set run.dir=DIR``), so two runs on one machine never touch each other's processes. The
embedded Redis is found by its port (its process title is ``redis-server 127.0.0.1:<port>``).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import redis
import zmq

from common import keys
from common.wire import Rollout, RolloutRequest, decode, encode

ROLES = ("learner", "scorer", "actor")


def _argv(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def role_processes(run_dir: str | Path, role: str | None = None,
                   replica: int | None = None) -> list[psutil.Process]:
    """The live role processes of the run whose ``run.dir`` is ``run_dir``.

    Args:
        run_dir: the ``run.dir`` the cluster was started with (exact string).
        role: ``learner``, ``scorer`` or ``actor``; None: every role.
        replica: only this ``--replica`` (actors and scorers).
    """
    marker = f"run.dir={run_dir}"
    found = []
    for proc in psutil.process_iter():
        argv = _argv(proc)
        if "cli.main" not in argv or marker not in argv:
            continue
        at = argv.index("cli.main") + 1
        name = argv[at] if at < len(argv) else ""
        if name not in ROLES or (role is not None and name != role):
            continue
        if replica is not None and argv[-2:] != ["--replica", str(replica)]:
            continue
        if proc.status() == psutil.STATUS_ZOMBIE:
            continue
        found.append(proc)
    return found


def role_name(proc: psutil.Process) -> str:
    """``learner``, ``scorer-0``, ``actor-1``: the role (and replica) of a role process."""
    argv = _argv(proc)
    if "cli.main" not in argv:
        return "?"
    role = argv[argv.index("cli.main") + 1]
    if argv[-2:-1] == ["--replica"]:
        return f"{role}-{argv[-1]}"
    return role


def one_pid(run_dir: str | Path, role: str, replica: int | None = None,
            timeout_s: float = 60.0) -> int:
    """The pid of the one live process of ``role`` (waits for a restarted one to appear).

    Raises:
        TimeoutError: none (or several) after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        procs = role_processes(run_dir, role, replica)
        if len(procs) == 1:
            return procs[0].pid
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(procs)} {role} processes of {run_dir} (wanted one)")
        time.sleep(0.2)


def kill(pid: int) -> None:
    """SIGKILL, as the OOM killer would: no handler runs, nothing is flushed."""
    os.kill(pid, signal.SIGKILL)


def freeze(pid: int) -> None:
    """SIGSTOP: the process stops but keeps its sockets open (a hung peer, not a dead one)."""
    os.kill(pid, signal.SIGSTOP)


def thaw(pid: int) -> None:
    """SIGCONT after :func:`freeze` (harmless on a process that is gone or running)."""
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def redis_url_of(pid: int) -> str:
    """The ``REDIS_URL`` in a role process's environment (where ``memup up`` put it)."""
    url = psutil.Process(pid).environ().get("REDIS_URL", "")
    if not url:
        raise RuntimeError(f"process {pid} has no REDIS_URL")
    return url


def redis_server_pid(url: str) -> int | None:
    """The pid of the ``redis-server`` listening on the port of ``url`` (None: none runs)."""
    title = f"127.0.0.1:{urlsplit(url).port}"
    for proc in psutil.process_iter():
        argv = _argv(proc)
        if argv and "redis-server" in argv[0] and (title in " ".join(argv)):
            if proc.status() != psutil.STATUS_ZOMBIE:
                return proc.pid
    return None


def client(url: str, timeout_s: float = 3.0) -> redis.Redis:
    """A plain client for sampling and injecting (no retries: the caller decides)."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def flushall(url: str) -> None:
    """Redis data loss: every key of every run is gone (a wiped volume, FLUSHALL)."""
    r = client(url)
    try:
        r.flushall()
    finally:
        r.close()


def scorer_endpoint(url: str, run: str) -> str:
    """The segment-server endpoint the first scorer advertises in Redis."""
    r = client(url)
    try:
        names = sorted(r.scan_iter(match=keys.scorer_endpoints_pattern(run), count=100))
        if not names:
            raise RuntimeError(f"no scorer endpoint of run {run} in Redis")
        return r.get(names[0]).decode()
    finally:
        r.close()


def forge_rollout_request(endpoint: str, wait_s: float = 3.0, credit: int = 64) -> int:
    """Sends one well-formed ``RolloutRequest`` from a fresh DEALER with no credentials,
    listens ``wait_s`` seconds, then disconnects; returns how many rollouts it was sent."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    received = 0
    try:
        sock.connect(endpoint)
        request = RolloutRequest(credit=credit, acks=[], policy_version=0, max_lag=1000,
                                 incarnation=f"forged-{secrets.token_hex(4)}")
        # Queued at once: connect() made the pipe, the handshake happens in the background.
        sock.send(encode(request), flags=zmq.NOBLOCK)
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            if sock.poll(int(left * 1000), zmq.POLLIN):
                try:
                    received += isinstance(decode(sock.recv()), Rollout)
                except Exception:  # anything it got counts, decodable or not
                    received += 1
    finally:
        sock.close(linger=0)
    return received


def flood_episodes(url: str, run: str, entries: int = 12_000, size: int = 64 * 1024,
                   maxlen: int = 20_000) -> int:
    """XADDs ``entries`` garbage entries, each a ``size``-byte bogus ``msg``, to the run's
    episodes stream (as a buggy or hostile actor would); returns the bytes written."""
    stream = keys.episodes_stream(run)
    garbage = os.urandom(size)
    r = client(url, timeout_s=30.0)
    try:
        for start in range(0, entries, 100):
            pipe = r.pipeline(transaction=False)
            for i in range(start, min(start + 100, entries)):
                pipe.xadd(stream, {keys.STREAM_FIELD: i.to_bytes(4, "big") + garbage[4:]},
                          maxlen=maxlen, approximate=True)
            pipe.execute()
    finally:
        r.close()
    return entries * size
