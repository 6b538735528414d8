"""The dead-letter stream: refused frames kept for inspection instead of retried forever."""

from __future__ import annotations

import redis

from common import keys
from common.config import ClusterConfig


def dead_letter(r: redis.Redis, config: ClusterConfig, *, source: str, entry: str, reason: str,
                detail: str, frame: bytes) -> None:
    """Appends one refused frame with where it came from and why.

    Only the frame's first ``redis.dead_letter_sample_bytes`` are kept and the stream is
    capped at ``redis.dead_letter_maxlen`` entries: a flood of garbage costs Redis a bounded
    number of bytes, whatever the frames' sizes."""
    r.xadd(keys.dead_letter_stream(config.run.name),
           {"source": source, "entry": entry, "reason": reason, "detail": detail[:500],
            "frame": bytes(frame[:config.redis.dead_letter_sample_bytes]), "size": len(frame)},
           maxlen=config.redis.dead_letter_maxlen, approximate=True)
