"""The dead-letter stream: refused frames kept for inspection instead of retried forever."""

from __future__ import annotations

import redis

from common import keys
from common.config import ClusterConfig

MAX_KEPT_FRAME = 64 * 1024
"""Only the first bytes of a refused frame are kept: enough to debug, never a memory risk."""


def dead_letter(r: redis.Redis, config: ClusterConfig, *, source: str, entry: str, reason: str,
                detail: str, frame: bytes) -> None:
    """Appends one refused frame (truncated) with where it came from and why."""
    r.xadd(keys.dead_letter_stream(config.run.name),
           {"source": source, "entry": entry, "reason": reason, "detail": detail[:500],
            "frame": bytes(frame[:MAX_KEPT_FRAME]), "size": len(frame)},
           maxlen=config.redis.dead_letter_maxlen, approximate=True)
