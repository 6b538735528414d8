"""Reading a finished (or running) run's directory: its resolved config and checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.checkpoint import CheckpointError, load_checkpoint
from common.config import ClusterConfig, ConfigError, load_config
from common.config_renames import upgrade_resolved


class RunDirError(RuntimeError):
    """The directory holds no usable config.json or checkpoints/learner.pt."""


def load_run(run_dir: Path) -> tuple[ClusterConfig, dict[str, Any]]:
    """The run's config (without Redis: offline tools need none) and its learner checkpoint.

    Raises:
        RunDirError: a missing or unreadable file, with what to do next.
    """
    path = run_dir / "checkpoints" / "learner.pt"
    if not path.is_file():  # load_checkpoint's own message is about `memup train` flags
        raise RunDirError(f"{run_dir}: no checkpoints/learner.pt (is this a run directory "
                          "written by `memup up`, and has its learner saved a checkpoint?)")
    try:
        state = load_checkpoint(path)
        values = upgrade_resolved(json.loads((run_dir / "config.json").read_text()))
        values["redis"]["url"] = ""  # redacted in the file; offline tools need no Redis
        return load_config(values=values, environ={}), state
    except (CheckpointError, OSError, ValueError, KeyError, ConfigError) as exc:
        raise RunDirError(f"{run_dir}: {exc} (is this a run directory written by "
                          f"`memup up`, with a checkpoint?)") from exc
