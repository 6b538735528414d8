"""The T-Maze task (memup-spec B.1): its env, spec, outcomes and networks."""

from __future__ import annotations

import gymnasium
import numpy as np

from common.config import ClusterConfig
from memup.networks import TaskNets
from tasks.base import Task, TaskSpec
from tasks.tmaze.env import N_ACTIONS, OBS_DIM, SUCCESS_REWARD, TMazeEnv
from tasks.tmaze.networks import tmaze_nets

CORRECT_BELOW = 0.3**2
"""T-Maze "accuracy" counts |prediction - reward| < 0.3 as right (memup-spec A.12); the
detector's surprise is the squared error, so the same test is surprise < 0.3 ** 2."""


class TMazeTask(Task):
    """``task.env = "tmaze"``: ``task.mode`` (L, LN, LR, LNR) and ``task.length``."""

    spec = TaskSpec((OBS_DIM,), "float32", N_ACTIONS)
    bench_overrides = ("task.length=100",)

    def make_env(self, slot: int = 0, data_policy: bool = False) -> gymnasium.Env:
        del slot, data_policy
        return TMazeEnv(self.config.task.mode, self.config.task.length)

    def succeeded(self, final_reward: float, steps: int, total_return: float) -> bool:
        """The junction was right."""
        del steps, total_return
        return final_reward >= SUCCESS_REWARD

    def hits(self, labels: np.ndarray, surprise: np.ndarray) -> list[int]:
        """The junction (the last step) predicted within 0.3."""
        del labels
        return [int(surprise[-1] < CORRECT_BELOW)]

    def networks(self, config: ClusterConfig) -> TaskNets:
        m = config.memup
        return tmaze_nets(m.hidden, chrono_horizon=self.chrono_horizon(config),
                          interaction=m.interaction)
