"""Fixtures shared by all tests: a private Redis server for the session, a clean client per test.

The server is an :class:`EmbeddedRedis` on a free loopback port with a random password,
so the tests never touch a Redis that may be running on 6379.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from common.embedded_redis import EmbeddedRedis
from common.redis_io import RetryPolicy, connect


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = connect(redis_server.url, retry=RetryPolicy(attempts=3))
    client.flushall()
    yield client
    client.close()
