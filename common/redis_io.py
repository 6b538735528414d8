"""Thin typed adapters over redis-py: connecting, bounded retries, and stream groups.

Transient errors (connection lost, timeout, a restarting server still loading, a full
server refusing writes) are retried with backoff and reported by kind, for
``redis_errors_total{kind}``; credential and permission errors are fatal at once. The
stream helpers handle a group lost with its stream and pending entries whose bodies were
trimmed (redis issue #6199).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.lifecycle import Backoff

T = TypeVar("T")

HEALTH_CHECK_INTERVAL = 30  # seconds a pooled connection idles before a PING on next use
PAGE = 100  # entries per page when listing a pending entries list
FATAL_PREFIXES = ("NOPERM", "WRONGPASS", "NOAUTH")  # error replies retrying cannot fix


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries, ``base * 2**n`` seconds apart (jittered), at most ``cap``."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 2.0


class ServiceUnavailable(RuntimeError):
    """Redis stayed unreachable (or unusable) through every attempt of a retry policy."""


class FatalRedisError(RuntimeError):
    """Redis refused the credentials or the permissions: retrying cannot help."""


def redact_url(url: str) -> str:
    """``url`` with its password (in the userinfo or a ``password=`` query) shown as ``***``."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return "<unparsable redis url>"
    netloc = parts.netloc
    if has_password:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
    query = parts.query
    if "password" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _error_kind(exc: redis.RedisError) -> str | None:
    """``fatal``, a retryable kind, or None (neither, e.g. WRONGTYPE)."""
    # Fatal first: AuthenticationError and BusyLoadingError subclass ConnectionError.
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError
                  | redis.exceptions.NoPermissionError) or str(exc).startswith(FATAL_PREFIXES):
        return "fatal"
    if isinstance(exc, redis.BusyLoadingError):
        return "loading"
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError):
        return "connection"
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "OOM command not allowed" in str(exc):
        return "oom"
    return None


def with_retry(call: Callable[[], T], *, retry: RetryPolicy, what: str,
               on_error: Callable[[str], None] | None = None,
               stop: threading.Event | None = None) -> T:
    """Runs ``call()``, retrying transient Redis errors with jittered exponential backoff.

    Args:
        call: the Redis operation; it must be safe to repeat.
        what: what is attempted, for messages (never a URL with a password).
        on_error: called with the kind (``connection``, ``timeout``, ``loading``,
            ``oom``) of every failed attempt.
        stop: when set (e.g. by SIGTERM), retrying ends early. The first attempt is
            always made, so a stopping role can still flush its last results.

    Other errors of ``call`` (e.g. WRONGTYPE) propagate at once.

    Raises:
        ServiceUnavailable: every attempt failed, or ``stop`` was set meanwhile.
        FatalRedisError: wrong password, missing AUTH or a missing ACL permission.
    """
    backoff = Backoff(base=retry.base, cap=retry.cap)
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except redis.RedisError as exc:
            kind = _error_kind(exc)
            if kind == "fatal":
                raise FatalRedisError(
                    f"{what}: Redis refused the credentials or permissions ({exc}). Check "
                    "the user and password in REDIS_URL and that the user's ACL allows "
                    "this command and key") from exc
            if kind is None:
                raise
            if on_error is not None:
                on_error(kind)
            if attempt >= retry.attempts:
                raise ServiceUnavailable(
                    f"{what}: gave up after {attempt} attempts, last a {kind} error ({exc}). "
                    "Is redis-server running and reachable? Set REDIS_URL=redis://:"
                    "<password>@<host>:<port>/0 to point at it") from exc
            delay = backoff.next()
            if stop is not None and (stop.is_set() or stop.wait(delay)):
                raise ServiceUnavailable(f"{what}: stopping after a {kind} error ({exc})") from exc
            if stop is None:
                time.sleep(delay)


def connect(url: str, *, timeout: float = 5.0, retry: RetryPolicy = RetryPolicy(),
            client_name: str | None = None) -> redis.Redis:
    """A client for ``url`` (bytes in, bytes out) that answered PING.

    Socket operations time out after ``timeout`` seconds (blocking reads must block for
    less). redis-py's own retries are cut to one immediate reconnect, for a pooled socket
    broken by a server restart; the rest is :func:`with_retry`'s job.

    Raises:
        ServiceUnavailable: no PING answer within the retry policy.
        FatalRedisError: the password or user is refused.
    """
    client = redis.Redis.from_url(
        url, decode_responses=False, socket_timeout=timeout, socket_connect_timeout=timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL, client_name=client_name,
        retry=Retry(NoBackoff(), 1), protocol=2)
    try:
        with_retry(client.ping, retry=retry, what=f"connecting to {redact_url(url)}")
    except BaseException:
        client.close()
        raise
    return client


def ensure_group(r: redis.Redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Creates consumer group ``group`` on ``stream`` (and the stream); False if it exists."""
    try:
        r.xgroup_create(stream, group, id=start_id, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


@dataclass
class ReadResult:
    """Entries read from a group: ``entries`` are ``(id, fields)``, oldest first;
    ``trimmed`` are ids that were pending but whose entries are gone (trimmed or deleted),
    already acknowledged; ``group_recreated`` says the group was missing and recreated."""

    entries: list[tuple[str, dict[bytes, bytes]]] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    group_recreated: bool = False


def _as_id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _split(r: redis.Redis, stream: str, group: str, raw: list[tuple[Any, Any]],
           result: ReadResult) -> None:
    """Adds ``raw`` entries to ``result``; entries without a body are acked as trimmed."""
    gone = []
    for entry_id, fields in raw:
        if entry_id is None:
            continue
        if fields:
            result.entries.append((_as_id(entry_id), fields))
        else:  # XADD needs a field, so an empty body means the entry was deleted
            gone.append(_as_id(entry_id))
    if gone:
        ack(r, stream, group, gone)
        result.trimmed.extend(gone)


def read_group(r: redis.Redis, stream: str, group: str, consumer: str, *, count: int,
               block_ms: int | None, pending: bool) -> ReadResult:
    """Reads up to ``count`` entries of ``stream`` as ``consumer`` of ``group``
    (``r`` must speak RESP2, as clients of :func:`connect` do).

    Args:
        pending: True reads the consumer's own pending entries (delivered before but not
            acknowledged, e.g. by a crashed previous run of this replica), without
            blocking; False reads new entries.
        block_ms: for new entries, how long to wait for one (None: do not wait).

    A missing group (the stream was deleted) is recreated from the stream's start and
    the read repeated once. Pending reads always start at the oldest pending entry: ack
    what was processed, and stop draining when both ``entries`` and ``trimmed`` are empty.
    """
    block_ms = None if pending else block_ms
    timeout = r.connection_pool.connection_kwargs.get("socket_timeout")
    if block_ms is not None and timeout and (block_ms == 0 or block_ms / 1000 >= timeout):
        raise ValueError(f"block_ms={block_ms} would outlast the {timeout}s socket timeout: "
                         "block for less, or connect() with a larger timeout")
    result = ReadResult()
    streams = {stream: "0" if pending else ">"}
    try:
        response = r.xreadgroup(group, consumer, streams, count=count, block=block_ms)
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        # From the stream's start: entries added since the group was lost are not skipped.
        ensure_group(r, stream, group, "0")
        result.group_recreated = True
        response = r.xreadgroup(group, consumer, streams, count=count, block=block_ms)
    _split(r, stream, group, [e for _, entries in response or [] for e in entries], result)
    return result


def reclaim_idle(r: redis.Redis, stream: str, group: str, consumer: str, *,
                 min_idle_ms: int, count: int) -> ReadResult:
    """Claims for ``consumer`` up to ``count`` entries pending for ``min_idle_ms`` or more
    (their consumer presumably died), with XAUTOCLAIM. Pending ids whose entries were
    deleted are acknowledged and returned in ``trimmed``."""
    result = ReadResult()
    cursor = "0-0"
    while len(result.entries) < count:
        try:
            reply = r.xautoclaim(stream, group, consumer, min_idle_ms, start_id=cursor,
                                 count=count - len(result.entries))
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            ensure_group(r, stream, group, "0")
            result.group_recreated = True
            return result  # a new group has nothing pending
        start, cursor, claimed = cursor, _as_id(reply[0]), reply[1]
        _split(r, stream, group, claimed, result)
        # Redis >= 7 drops deleted entries from the PEL itself and lists them third.
        deleted = [_as_id(i) for i in (reply[2] if len(reply) > 2 else [])]
        if any(entry_id is None for entry_id, _ in claimed):
            deleted += _deleted_in_own_pel(r, stream, group, consumer, start, cursor)
        if deleted:
            ack(r, stream, group, deleted)
            result.trimmed.extend(deleted)
        if cursor == "0-0":
            break
    return result


def _deleted_in_own_pel(r: redis.Redis, stream: str, group: str, consumer: str,
                        start: str, end: str) -> list[str]:
    """Ids pending for ``consumer`` from ``start`` to before ``end`` whose entries are gone.
    Redis < 7 XAUTOCLAIM claims deleted entries but returns them as nil, without their id:
    found here, they are acked instead of bouncing between consumers forever."""
    gone: list[str] = []
    low, high = start, "+" if end == "0-0" else f"({end}"
    while page := r.xpending_range(stream, group, min=low, max=high, count=PAGE,
                                   consumername=consumer):
        ids = [_as_id(p["message_id"]) for p in page]
        pipe = r.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(stream, entry_id, entry_id)
        gone += [i for i, found in zip(ids, pipe.execute()) if not found]
        low = f"({ids[-1]}"
    return gone


def ack(r: redis.Redis, stream: str, group: str, ids: Sequence[str]) -> int:
    """Acknowledges ``ids``; returns how many were pending."""
    return int(r.xack(stream, group, *ids)) if ids else 0


def stream_stats(r: redis.Redis, stream: str, group: str) -> dict[str, int]:
    """``length`` of the stream, entries ``pending`` in ``group`` and the group's ``lag``
    (entries not yet delivered; -1 when unknown, e.g. before Redis 7)."""
    length = int(r.xlen(stream))
    try:
        pending = int(r.xpending(stream, group)["pending"])
        groups = r.xinfo_groups(stream)
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
            raise
        return {"length": length, "pending": 0, "lag": -1}
    lag = next((int(g["lag"]) for g in groups
                if _as_id(g["name"]) == group and g.get("lag") is not None), -1)
    return {"length": length, "pending": pending, "lag": lag}
