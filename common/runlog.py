"""A run's directory: resolved config, JSONL metrics log (and optionally TensorBoard events)."""

from __future__ import annotations

import json
import logging
import time
from numbers import Real
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SECRET_WORDS = ("password", "secret", "token", "key")
#: the update counter a record is plotted against, the first one it has: the learner logs
#: ``ppo_update`` in phase II (whose PPO stats also hold ``updates``, the minibatch count)
#: and ``update`` in phase I; ``memup train`` logs ``updates``
STEP_KEYS = ("ppo_update", "update", "updates")
#: a second axis, where logged: every scalar of such a record is also written against it,
#: tagged ``by_env_steps/<tag>``
ENV_STEPS = "env_steps"
TENSORBOARD_HINT = ('run.tensorboard / --tensorboard: the tensorboard package is missing '
                    '(pip install -e ".[tensorboard]"); this run logs to metrics.jsonl only')


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


def wants_tensorboard(config: dict[str, Any]) -> bool:
    """Whether ``config`` asks for TensorBoard events: ``run.tensorboard`` in a cluster
    config, ``tensorboard`` in a ``memup train`` one."""
    run = config.get("run")
    return bool(run.get("tensorboard") if isinstance(run, dict) else config.get("tensorboard"))


def record_step(record: dict[str, Any], default: int) -> int:
    """The update counter of a metrics record (:data:`STEP_KEYS`), else ``default``."""
    return next((int(record[k]) for k in STEP_KEYS if k in record), default)


def scalars(record: dict[str, Any], step: int) -> list[tuple[str, float, int]]:
    """The ``(tag, value, step)`` scalars of one metrics record.

    Tags are the record's keys, under ``phase<N>/`` where the record names its phase. Where
    the record has ``env_steps``, each scalar is repeated against it under ``by_env_steps/``.
    Non-numeric values (strings, nested settings) and the ``time`` stamp are left out.

    Args:
        record: one record as written to ``metrics.jsonl``.
        step: the record's update counter (:func:`record_step`).

    Returns:
        The scalars, update-counter axis first.
    """
    prefix = f"phase{record['phase']}/" if "phase" in record else ""
    values = {prefix + k: float(v) for k, v in record.items()
              if isinstance(v, Real) and k not in ("time", "phase")}
    out = [(tag, v, step) for tag, v in values.items()]
    env_steps = record.get(ENV_STEPS)
    if isinstance(env_steps, int):
        out += [(f"by_{ENV_STEPS}/{tag}", v, env_steps) for tag, v in values.items()
                if tag != prefix + ENV_STEPS]
    return out


class RunLog:
    """Appends metric records to ``<run>/metrics.jsonl`` and keeps ``<run>/config.json``.

    With TensorBoard on, every numeric value of every record also goes to
    ``<run>/tensorboard/`` as a scalar event (tags and steps: :func:`scalars`; a record with
    no update counter takes the last one). The event file is made on the first record, so
    a RunLog that only writes the config leaves none.

    Args:
        run_dir: the run's directory (created).
        config: the resolved configuration, written (redacted) as ``config.json``.
        tensorboard: write TensorBoard events too; None: as ``config`` says
            (:func:`wants_tensorboard`). Without the ``tensorboard`` package one line says
            how to install it and the run goes on without events.
    """

    def __init__(self, run_dir: str | Path, config: dict[str, Any],
                 tensorboard: bool | None = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.json").write_text(json.dumps(redact(config), indent=2) + "\n")
        self.path = self.dir / "metrics.jsonl"
        self._writer_class: Any = None
        self._writer: Any = None
        self._step = 0
        if wants_tensorboard(config) if tensorboard is None else tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning(TENSORBOARD_HINT)
            else:
                self._writer_class = SummaryWriter

    @property
    def tensorboard_dir(self) -> Path:
        """Where the TensorBoard event files go: ``<run>/tensorboard``."""
        return self.dir / "tensorboard"

    def log(self, record: dict[str, Any]) -> None:
        """Appends one record (with a wall-clock ``time``) and flushes it to disk (and its
        scalars to the TensorBoard events, when on)."""
        stamped = {"time": time.time(), **record}
        with self.path.open("a") as f:
            f.write(json.dumps(stamped) + "\n")
        if self._writer_class is not None:
            self._write_events(stamped)

    def _write_events(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.tensorboard_dir))
        self._step = record_step(record, self._step)
        for tag, value, step in scalars(record, self._step):
            self._writer.add_scalar(tag, value, step, walltime=record["time"])
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the TensorBoard event file (a no-op without one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def records(self) -> list[dict[str, Any]]:
        """Every record logged so far (also by earlier, resumed processes)."""
        return read_records(self.dir)


def read_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (empty when there is none yet)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
