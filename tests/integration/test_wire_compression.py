"""Image fragments an actor publishes compressed are read back by the scorer, unchanged.

The actor's own :class:`FragmentPublisher` writes a two-fragment episode of image steps to
a real Redis with ``[wire] codec`` set; the scorer's own readers (``load_done``,
``load_steps``) decode it without being told the codec.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from common import keys
from common.embedded_redis import EmbeddedRedis
from common.wire import EpisodeDone, Fragment
from scorer.episodes import load_done, load_steps
from tests.integration.pipeline_helpers import make_config, publish
from tests.unit.wire_samples import synthetic_frames

STEPS, PER = 128, 64


def image_episode(run: str, episode: str) -> tuple[list[Fragment], EpisodeDone]:
    rng = np.random.default_rng(5)
    steps = {"obs": synthetic_frames(STEPS, seed=5),
             "action": rng.integers(0, 8, STEPS, dtype=np.int64),
             "reward": (rng.random(STEPS) < 0.05).astype(np.float32),
             "log_prob": np.full(STEPS, np.log(1 / 8), np.float32),
             "value": np.zeros(STEPS, np.float32)}
    fragments = [Fragment(run=run, actor="actor-0", episode=episode, index=i, first_step=s,
                          arrays={k: v[s:s + PER] for k, v in steps.items()},
                          policy_version=0, final=s + PER >= STEPS)
                 for i, s in enumerate(range(0, STEPS, PER))]
    done = EpisodeDone(episode=episode, actor="actor-0", length=STEPS,
                       return_=float(steps["reward"].sum()), policy_version=0,
                       fragments=len(fragments))
    return fragments, done


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compressed_fragments_are_read_back_by_the_scorer(
        redis_server: EmbeddedRedis, redis_client: redis.Redis, codec: str) -> None:
    run = f"wire-{codec}"
    config = make_config(run, redis_server.url, f"wire.codec={codec}", "wire.level=1")
    fragments, done = image_episode(run, "img-0")
    publish(redis_client, config, [(fragments, done)])

    frames = redis_client.lrange(keys.fragments_key(run, "img-0"), 0, -1)
    raw = sum(f.arrays["obs"].nbytes for f in fragments)
    assert len(frames) == 2 and sum(map(len, frames)) < raw  # stored compressed

    limit = config.redis.max_frame_bytes
    (_, fields), = redis_client.xrange(keys.episodes_stream(run))
    assert load_done(redis_client, run, fields, limit) == done
    steps = load_steps(redis_client, run, done, limit)
    for name in ("obs", "action", "reward", "log_prob", "value"):
        want = np.concatenate([f.arrays[name] for f in fragments])
        assert steps[name].dtype == want.dtype
        np.testing.assert_array_equal(steps[name], want)
