"""Any gymnasium env as a task: ``task.env = "gym:<id>"`` or ``"<module>:<callable>"``.

``"gym:<id>"`` is ``gymnasium.make(id, **task.gym_kwargs)`` (``"gym:<module>:<id>"`` imports
the module that registers the id, e.g. ``"gym:popgym:popgym-RepeatPreviousEasy-v0"``);
``"<module>:<callable>"`` calls ``callable(**task.gym_kwargs)``, a class or a function that
returns an env. Observations become vectors, one-hots or frames
(:mod:`tasks.gym.observations`): Box vectors get an MLP encoder, images a CNN. Actions must
be ``Discrete``. MemUP predicts the reward; an episode succeeds when its return reaches
``task.success_return``.
"""

from __future__ import annotations

import importlib
import logging

import gymnasium
import numpy as np
from gymnasium import spaces

from common.config import ClusterConfig, ConfigError
from memup.networks import TaskNets
from tasks.base import Task, TaskSpec
from tasks.frames import frame_nets
from tasks.gym.observations import UnsupportedSpace, WireObservations, observations
from tasks.vector import vector_nets

log = logging.getLogger(__name__)


def make_raw_env(env: str, kwargs: dict) -> gymnasium.Env:
    """The env ``task.env`` names, as its maker returns it.

    Raises:
        ConfigError: the module, id or callable cannot be found or called.
    """
    try:
        if env.startswith("gym:"):
            return gymnasium.make(env[len("gym:"):], **kwargs)
        module, _, name = env.rpartition(":")
        maker = getattr(importlib.import_module(module), name)
        made = maker(**kwargs)
    except (ImportError, AttributeError, gymnasium.error.Error, TypeError) as exc:
        raise ConfigError(f"task.env {env!r}: cannot make the env ({type(exc).__name__}: "
                          f"{exc}); for an extra's envs install it, e.g. "
                          "pip install -e \".[popgym]\"") from exc
    if not isinstance(made, gymnasium.Env):
        raise ConfigError(f"task.env {env!r}: the callable returned {type(made).__name__}, "
                          "not a gymnasium.Env")
    return made


class GymTask(Task):
    """A gymnasium env with Discrete actions; the outcome is the reward."""

    def __init__(self, config: ClusterConfig) -> None:
        super().__init__(config)
        env = make_raw_env(self.name, config.task.gym_kwargs)
        try:
            actions = env.action_space
            if not isinstance(actions, spaces.Discrete):
                raise ConfigError(f"task.env {self.name!r}: action space {actions} is not "
                                  "supported: the cluster runs Discrete actions only")
            try:
                self.view = observations(env.observation_space)
            except UnsupportedSpace as exc:
                raise ConfigError(f"task.env {self.name!r}: {exc}") from None
            if self.view.dropped:
                log.warning("task.env %s: the observation's text parts %s are not carried",
                            self.name, ", ".join(self.view.dropped))
            self.action_start = int(actions.start)
            self.spec = TaskSpec(self.view.shape, self.view.dtype, int(actions.n))
            self.max_steps = env.spec.max_episode_steps if env.spec is not None else None
        finally:
            env.close()

    def make_env(self, slot: int = 0, data_policy: bool = False) -> gymnasium.Env:
        del slot, data_policy
        env = make_raw_env(self.name, self.config.task.gym_kwargs)
        return WireObservations(env, self.view, self.action_start)

    def succeeded(self, final_reward: float, steps: int, total_return: float) -> bool:
        """The return reached ``task.success_return``."""
        del final_reward, steps
        return total_return >= self.config.task.success_return

    def chrono_horizon(self, config: ClusterConfig) -> int | None:
        """``memup.chrono = -1``: the env's step limit when it has one, else ``task.length``."""
        if config.memup.chrono == -1 and self.max_steps:
            return int(self.max_steps)
        return super().chrono_horizon(config)

    def networks(self, config: ClusterConfig) -> TaskNets:
        m, spec = config.memup, self.spec
        if spec.frames:
            return frame_nets(m.hidden, spec.obs_shape, spec.n_actions, m.cnn,  # type: ignore[arg-type]
                              self.chrono_horizon(config), m.interaction,
                              m.reconstruction > 0, m.query_shift, m.predictor_dropout)
        return vector_nets(int(np.prod(spec.obs_shape)), spec.n_actions, m.hidden,
                           chrono_horizon=self.chrono_horizon(config), interaction=m.interaction,
                           predictor_hidden=256)
