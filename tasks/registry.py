"""``task.env`` → the :class:`tasks.base.Task` that runs it: a new task is one line here.

Named tasks are imported only when a run uses them (Two-Colors needs ViZDoom).
"""

from __future__ import annotations

import importlib

from common.config import ClusterConfig, ConfigError
from tasks.base import Task

TASKS: dict[str, str] = {
    "tmaze": "tasks.tmaze.task:TMazeTask",
    "two-colors": "tasks.two_colors.task:TwoColorsTask",
}
"""Named tasks: ``task.env`` value → ``module:class``."""


def task_class(env: str) -> type[Task]:
    """The Task class of ``task.env`` value ``env``.

    Raises:
        ConfigError: ``env`` names no task.
    """
    if env not in TASKS:
        raise ConfigError(f"task.env {env!r}: use one of {', '.join(sorted(TASKS))}")
    module, _, name = TASKS[env].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def task_for(config: ClusterConfig) -> Task:
    """The run's task, its config fields checked.

    Raises:
        ConfigError: ``task.env`` names no task, or a field holds a value it cannot use.
    """
    task = task_class(config.task.env)(config)
    task.check(config)
    return task
