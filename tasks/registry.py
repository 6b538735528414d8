"""``task.env`` → the :class:`tasks.base.Task` that runs it: a new task is one line here.

Named tasks are imported only when a run uses them (Two-Colors needs ViZDoom). Any other
gymnasium env runs through :class:`tasks.gym.GymTask`: ``"gym:<id>"`` for a registered
id (``"gym:<module>:<id>"`` imports the module that registers it first) or
``"<module>:<callable>"`` for a function or class that returns an env.
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
GYM_TASK = "tasks.gym.task:GymTask"


def task_class(env: str) -> type[Task]:
    """The Task class of ``task.env`` value ``env``.

    Raises:
        ConfigError: ``env`` names no task.
    """
    if env in TASKS:
        path = TASKS[env]
    elif env.startswith("gym:") or (":" in env and all(env.partition(":")[::2])):
        path = GYM_TASK
    else:
        raise ConfigError(f"task.env {env!r}: use one of {', '.join(sorted(TASKS))}, "
                          "\"gym:<id>\" (a registered gymnasium id) or \"<module>:<callable>\"")
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def task_for(config: ClusterConfig) -> Task:
    """The run's task, its config fields checked.

    Raises:
        ConfigError: ``task.env`` names no task, or a field holds a value it cannot use.
    """
    task = task_class(config.task.env)(config)
    task.check(config)
    return task
