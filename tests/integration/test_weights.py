"""Weights published through a Redis hash: round trip, polling, integrity, monotonic versions."""

from __future__ import annotations

import hashlib
import threading

import pytest
import redis
import torch

from common.embedded_redis import EmbeddedRedis
from common.keys import weights_key
from common.redis_io import connect
from common.weights import WeightsError, fetch_weights, publish_weights, weights_version

RUN, NAME = "run1", "policy"


def _state(fill: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((64, 32), fill), "b": torch.full((32,), fill, dtype=torch.float64),
            "steps": torch.tensor([int(fill)], dtype=torch.int64)}


def test_round_trip(redis_client: redis.Redis) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[1].weight = torch.nn.Parameter(model[0].weight[:2, :3])  # a view: shared storage
    sha = publish_weights(redis_client, RUN, NAME, model.state_dict(), version=1)

    stored = redis_client.hgetall(weights_key(RUN, NAME))
    assert stored[b"version"] == b"1" and stored[b"sha256"].decode() == sha
    assert int(stored[b"nbytes"]) == len(stored[b"data"])
    version, tensors = fetch_weights(redis_client, RUN, NAME)
    assert version == 1
    assert tensors.keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensors[key], tensor) and tensors[key].dtype == tensor.dtype


def test_version_polling_and_nothing_newer(redis_client: redis.Redis) -> None:
    assert weights_version(redis_client, RUN, NAME) == 0
    assert fetch_weights(redis_client, RUN, NAME) is None
    publish_weights(redis_client, RUN, NAME, _state(3), version=3)
    assert weights_version(redis_client, RUN, NAME) == 3
    assert fetch_weights(redis_client, RUN, NAME, known_version=3) is None
    assert fetch_weights(redis_client, RUN, NAME, known_version=5) is None
    fetched = fetch_weights(redis_client, RUN, NAME, known_version=2)
    assert fetched is not None and fetched[0] == 3
    assert weights_version(redis_client, RUN, "other") == 0  # names do not mix


def test_versions_only_go_up(redis_client: redis.Redis) -> None:
    sha = publish_weights(redis_client, RUN, NAME, _state(5), version=5)
    assert publish_weights(redis_client, RUN, NAME, _state(5), version=5) == sha  # idempotent
    with pytest.raises(ValueError, match="already published"):
        publish_weights(redis_client, RUN, NAME, _state(4), version=4)
    with pytest.raises(ValueError, match="other tensors"):
        publish_weights(redis_client, RUN, NAME, _state(6), version=5)
    with pytest.raises(ValueError, match=">= 1"):
        publish_weights(redis_client, RUN, NAME, _state(0), version=0)
    fetched = fetch_weights(redis_client, RUN, NAME)
    assert fetched is not None and fetched[0] == 5 and fetched[1]["w"][0, 0].item() == 5


def test_corruption_is_detected(redis_client: redis.Redis) -> None:
    publish_weights(redis_client, RUN, NAME, _state(1), version=1)
    key = weights_key(RUN, NAME)
    data = redis_client.hget(key, "data")
    redis_client.hset(key, "data", data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(WeightsError, match="corrupted"):
        fetch_weights(redis_client, RUN, NAME)

    # A consistent hash over bytes that are not safetensors is refused too.
    redis_client.hset(key, mapping={"data": b"junk", "sha256": hashlib.sha256(b"junk").hexdigest()})
    with pytest.raises(WeightsError, match="not valid safetensors"):
        fetch_weights(redis_client, RUN, NAME)
    redis_client.hdel(key, "data")
    with pytest.raises(WeightsError, match="incomplete"):
        fetch_weights(redis_client, RUN, NAME)


def test_fetch_never_mixes_versions(redis_client: redis.Redis,
                                    redis_server: EmbeddedRedis) -> None:
    publisher = connect(redis_server.url)
    last = 150
    done = threading.Event()
    errors: list[BaseException] = []

    def publish_all() -> None:
        try:
            for version in range(1, last + 1):
                publish_weights(publisher, RUN, NAME, _state(version), version)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=publish_all)
    thread.start()
    seen = []
    known = 0
    while not done.is_set() or known < last:
        fetched = fetch_weights(redis_client, RUN, NAME, known_version=known)
        if fetched is None:
            if done.is_set() and weights_version(redis_client, RUN, NAME) == known:
                break
            continue
        version, tensors = fetched
        assert version > known
        assert tensors["w"].eq(version).all() and tensors["b"].eq(version).all()
        assert tensors["steps"].item() == version
        known = version
        seen.append(version)
    thread.join()
    publisher.close()
    assert not errors
    assert known == last and len(seen) > 1
