"""The status view of `memup up` against a real Redis: it survives Redis going away and keeps
the learner's last numbers after its status key expired."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import redis

from cli.status_view import StatusView
from common import keys
from common.embedded_redis import EmbeddedRedis
from common.redis_io import connect


def test_an_unreachable_redis_is_shown_not_raised(tmp_path: Path) -> None:
    out = io.StringIO()
    with EmbeddedRedis(data_dir=str(tmp_path), appendonly=True) as server:
        client = connect(server.url)
        client.set(keys.env_steps_key("r"), 4096)
        view = StatusView(client, "r", out=out, log_interval_s=0.0)
        assert view.draw(force=True)["env_steps"] == 4096
        server.stop()
        shown = view.draw(force=True)  # raised redis.ConnectionError before
        assert shown is not None and shown["env_steps"] == 4096  # the last numbers read
        lines = out.getvalue().splitlines()
        assert len(lines) == 2 and "Redis unreachable, retrying" in lines[1]
        server.start()  # same port, password and AOF: the same client reads again
        assert view.draw(force=True)["env_steps"] == 4096
        client.close()


def test_the_learner_s_last_status_outlives_its_key(redis_client: redis.Redis) -> None:
    out = io.StringIO()
    view = StatusView(redis_client, "r", out=out, log_interval_s=0.0)
    status = {"time": time.time(), "phase": 2, "memup_updates": 880, "ppo_updates": 19,
              "memory_accuracy": 1.0, "success": 0.93}
    redis_client.set(keys.status_key("r", "learner-0"), json.dumps(status), px=300)
    view.note_learner()
    time.sleep(0.5)
    assert redis_client.get(keys.status_key("r", "learner-0")) is None  # expired
    last = view.draw(force=True)
    assert last is not None and last["phase"] == 2 and last["ppo_updates"] == 19
    line = out.getvalue().splitlines()[-1]
    assert "phase II (policy)" in line and "success 0.930" in line
    assert "starting" not in line
