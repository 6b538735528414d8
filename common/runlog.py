"""A run's directory: resolved config, JSONL metrics log and learning-curve plots."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

SECRET_WORDS = ("password", "secret", "token", "key")


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with secret-looking values replaced by ``"***"`` (recursively)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out[k] = redact(v)
        elif any(w in k.lower() for w in SECRET_WORDS) and v:
            out[k] = "***"
        else:
            out[k] = v
    return out


class RunLog:
    """Appends metric records to ``<run>/metrics.jsonl`` and keeps ``<run>/config.json``.

    Args:
        run_dir: the run's directory (created).
        config: the resolved configuration, written (redacted) as ``config.json``.
    """

    def __init__(self, run_dir: str | Path, config: dict[str, Any]) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.json").write_text(json.dumps(redact(config), indent=2) + "\n")
        self.path = self.dir / "metrics.jsonl"

    def log(self, record: dict[str, Any]) -> None:
        """Appends one record (with a wall-clock ``time``) and flushes it to disk."""
        with self.path.open("a") as f:
            f.write(json.dumps({"time": time.time(), **record}) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Every record logged so far (also by earlier, resumed processes)."""
        return read_records(self.dir)


def read_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (empty when there is none yet)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
