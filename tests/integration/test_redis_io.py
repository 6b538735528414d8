"""redis_io against a real redis-server: groups, pending entries, trims, retries, ACLs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from common.embedded_redis import EmbeddedRedis, free_port
from common.redis_io import (
    FatalRedisError,
    RetryPolicy,
    ServiceUnavailable,
    ack,
    connect,
    ensure_group,
    read_group,
    reclaim_idle,
    redact_url,
    stream_stats,
    with_retry,
)

S, G = "test:episodes", "scorers"


def _add(r: redis.Redis, n: int) -> list[str]:
    return [r.xadd(S, {"i": str(i)}).decode() for i in range(n)]


def _major(r: redis.Redis) -> int:
    return int(r.info("server")["redis_version"].split(".")[0])


@pytest.fixture
def group(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    assert ensure_group(redis_client, S, G) is True
    assert ensure_group(redis_client, S, G) is False  # BUSYGROUP
    yield redis_client


def test_new_entries_then_pending_drain(group: redis.Redis) -> None:
    ids = _add(group, 3)
    first = read_group(group, S, G, "scorer-0", count=10, block_ms=100, pending=False)
    assert [i for i, _ in first.entries] == ids
    assert first.entries[0][1] == {b"i": b"0"}
    assert read_group(group, S, G, "scorer-0", count=10, block_ms=50, pending=False).entries == []

    # Not acked: a restarted scorer-0 gets them again from its own PEL, another consumer not.
    again = read_group(group, S, G, "scorer-0", count=2, block_ms=None, pending=True)
    assert [i for i, _ in again.entries] == ids[:2]
    assert read_group(group, S, G, "scorer-1", count=10, block_ms=None, pending=True).entries == []
    assert ack(group, S, G, ids) == 3
    assert ack(group, S, G, []) == 0
    assert read_group(group, S, G, "scorer-0", count=10, block_ms=None, pending=True).entries == []


def test_trimmed_pending_entries_are_acked_and_reported(group: redis.Redis) -> None:
    ids = _add(group, 4)
    read_group(group, S, G, "scorer-0", count=10, block_ms=None, pending=False)
    group.xdel(S, ids[1])
    group.xtrim(S, maxlen=1, approximate=False)  # drops ids[0] and ids[2]: only ids[3] stays
    result = read_group(group, S, G, "scorer-0", count=10, block_ms=None, pending=True)
    assert [i for i, _ in result.entries] == [ids[3]]
    assert sorted(result.trimmed) == sorted(ids[:3])
    assert group.xpending(S, G)["pending"] == 1  # only the live entry is still pending


def test_reclaim_idle_moves_entries_of_a_dead_consumer(group: redis.Redis) -> None:
    ids = _add(group, 5)
    read_group(group, S, G, "scorer-0", count=10, block_ms=None, pending=False)
    assert reclaim_idle(group, S, G, "scorer-1", min_idle_ms=60_000, count=10).entries == []
    group.xdel(S, ids[0])
    time.sleep(0.05)

    part = reclaim_idle(group, S, G, "scorer-1", min_idle_ms=20, count=2)
    assert [i for i, _ in part.entries] == ids[1:3]
    assert part.trimmed == [ids[0]]
    rest = reclaim_idle(group, S, G, "scorer-1", min_idle_ms=20, count=10)
    assert [i for i, _ in rest.entries] == ids[3:]  # claimed ones are fresh again
    consumers = {c["name"].decode(): c["pending"] for c in group.xinfo_consumers(S, G)}
    assert consumers == {"scorer-0": 0, "scorer-1": 4}


def test_group_is_recreated_after_the_stream_is_deleted(group: redis.Redis) -> None:
    _add(group, 2)
    read_group(group, S, G, "scorer-0", count=10, block_ms=None, pending=False)
    group.delete(S)
    new_id = group.xadd(S, {"i": "new"}).decode()  # recreates the stream, without the group

    result = read_group(group, S, G, "scorer-0", count=10, block_ms=None, pending=False)
    assert result.group_recreated
    assert [i for i, _ in result.entries] == [new_id]  # recreated from "0": nothing lost
    assert not read_group(group, S, G, "scorer-0", count=1, block_ms=None,
                          pending=False).group_recreated
    group.delete(S)
    assert reclaim_idle(group, S, G, "scorer-0", min_idle_ms=0, count=5).group_recreated


def test_block_longer_than_socket_timeout_is_refused(group: redis.Redis) -> None:
    with pytest.raises(ValueError, match="socket timeout"):
        read_group(group, S, G, "scorer-0", count=1, block_ms=10_000, pending=False)


def test_stream_stats(group: redis.Redis) -> None:
    _add(group, 5)
    read_group(group, S, G, "scorer-0", count=3, block_ms=None, pending=False)
    stats = stream_stats(group, S, G)
    lag = 2 if _major(group) >= 7 else -1  # XINFO GROUPS reports lag since Redis 7
    assert stats == {"length": 5, "pending": 3, "lag": lag}
    assert stream_stats(group, "test:none", G) == {"length": 0, "pending": 0, "lag": -1}


def test_missing_permission_is_fatal(redis_client: redis.Redis,
                                     redis_server: EmbeddedRedis) -> None:
    redis_client.acl_setuser("reader", enabled=True, passwords=["+readerpw"], keys=["*"],
                             commands=["+@all", "-@write"])
    try:
        reader = connect(f"redis://reader:readerpw@127.0.0.1:{redis_server.port}/0")
        assert reader.xlen(S) == 0
        kinds: list[str] = []
        with pytest.raises(FatalRedisError, match=r"NOPERM|permission") as info:
            with_retry(lambda: reader.xadd(S, {"a": "1"}), retry=RetryPolicy(), what="XADD",
                       on_error=kinds.append)
        assert isinstance(info.value.__cause__, redis.exceptions.NoPermissionError)
        assert kinds == []  # not retried
    finally:
        redis_client.acl_deluser("reader")


def test_wrong_password_is_fatal_and_redacted(redis_server: EmbeddedRedis) -> None:
    url = f"redis://:wrong-secret@127.0.0.1:{redis_server.port}/0"
    start = time.monotonic()
    with pytest.raises(FatalRedisError) as info:
        connect(url, retry=RetryPolicy(attempts=8, base=1.0, cap=1.0))
    assert time.monotonic() - start < 1.0  # no backoff: not retried
    assert "wrong-secret" not in str(info.value) and "***" in str(info.value)
    assert redact_url(url) == f"redis://:***@127.0.0.1:{redis_server.port}/0"


def test_closed_port_gives_up_quickly() -> None:
    url = f"redis://:closed-secret@127.0.0.1:{free_port()}/0"
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="redis-server running") as info:
        connect(url, timeout=0.5, retry=RetryPolicy(attempts=3, base=0.01, cap=0.02))
    assert time.monotonic() - start < 2.0
    assert "closed-secret" not in str(info.value) and "127.0.0.1" in str(info.value)

    kinds: list[str] = []
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, retry=None)
    with pytest.raises(ServiceUnavailable, match="after 3 attempts"):
        with_retry(client.ping, retry=RetryPolicy(attempts=3, base=0.01, cap=0.02),
                   what="PING", on_error=kinds.append)
    assert kinds == ["connection"] * 3


def test_stop_event_ends_retrying_early() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=None)
    stop = threading.Event()
    stop.set()
    calls: list[str] = []
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="stopping"):
        with_retry(client.ping, retry=RetryPolicy(attempts=50, base=1.0, cap=1.0),
                   what="PING", on_error=calls.append, stop=stop)
    assert calls == ["connection"] and time.monotonic() - start < 0.5


def test_other_errors_are_not_retried(redis_client: redis.Redis) -> None:
    redis_client.set("plain", "x")
    calls = []

    def wrong_type() -> object:
        calls.append(1)
        return redis_client.xlen("plain")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        with_retry(wrong_type, retry=RetryPolicy(), what="XLEN")
    assert len(calls) == 1


def test_oom_is_retried(redis_client: redis.Redis) -> None:
    redis_client.config_set("maxmemory", "1")  # every write is now refused
    kinds: list[str] = []
    try:
        with pytest.raises(ServiceUnavailable):
            with_retry(lambda: redis_client.set("k", "v"), what="SET", on_error=kinds.append,
                       retry=RetryPolicy(attempts=2, base=0.01, cap=0.01))
    finally:
        redis_client.config_set("maxmemory", "0")
    assert kinds == ["oom", "oom"]


def test_with_retry_rides_out_a_restart() -> None:
    with EmbeddedRedis() as server:
        client = connect(server.url, timeout=1.0)
        client.set("before", "1")
        old_pid = server.pid
        restarter = threading.Thread(target=server.restart, kwargs={"down_for": 0.4})
        restarter.start()
        deadline = time.monotonic() + 5
        while server.pid == old_pid and time.monotonic() < deadline:
            time.sleep(0.005)  # until the old process is gone
        kinds: list[str] = []
        value = with_retry(lambda: client.incr("counter"), what="INCR", on_error=kinds.append,
                           retry=RetryPolicy(attempts=30, base=0.05, cap=0.2))
        restarter.join()
        assert value == 1
        assert kinds and set(kinds) <= {"connection", "loading"}
        assert client.get("before") is None  # the restarted server started empty

