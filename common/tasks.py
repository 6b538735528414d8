"""What every role must know about a task: observation layout, step encoding, outcomes.

Actors build memory inputs one step at a time, scorers and the learner whole episodes; both
go through the same :class:`TaskSpec`, so every role feeds the networks identical features.
Vector tasks (T-Maze) encode steps as float32 rows (:mod:`memup.encoding`), image tasks
(Two-Colors) as uint8 records (:mod:`memup.frames`). The env objects themselves are built by
actors only (``actor/envs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.config import ClusterConfig
from memup.encoding import encode_steps, step_inputs
from memup.frames import encode_frame_steps, frame_step_inputs

Encoded = tuple[np.ndarray, np.ndarray, np.ndarray]

# T-Maze "accuracy" counts |prediction - reward| < 0.3 as right (memup-spec A.12); the
# detector's surprise is the squared error, so the same test is surprise < 0.3 ** 2.
TMAZE_CORRECT_BELOW = 0.3**2
PICKUP_ABOVE = 0.5  # |reward| of a Two-Colors step with a pickup (±1 + living reward)


@dataclass(frozen=True)
class TaskSpec:
    """Observation layout, action count and outcome rules of one task.

    Attributes:
        name: the ``task.env`` value.
        obs_shape: shape of one observation.
        obs_dtype: its dtype name (``float32`` vectors, ``uint8`` frames).
        n_actions: size of the discrete action space.
        success_reward: (T-Maze) an episode whose final reward reaches this succeeded.
        survive_steps: (Two-Colors) an episode that lasts this many steps succeeded.
        outcome_steps: (image tasks) the outcome y_k sums this many rewards from step k.
        outcome_skip: (image tasks) the sum starts this many steps after k.
    """

    name: str
    obs_shape: tuple[int, ...]
    obs_dtype: str
    n_actions: int
    success_reward: float = float("inf")
    survive_steps: int = 0
    outcome_steps: int = 1
    outcome_skip: int = 0

    @property
    def frames(self) -> bool:
        """Observations are images (uint8 records) rather than vectors."""
        return self.obs_dtype == "uint8"

    @property
    def input_dim(self) -> int:
        """Width of a memory input row (vector tasks: ``[obs, onehot(prev_a), prev_r]``)."""
        if self.frames:
            raise ValueError("image tasks have records, not input vectors")
        return int(np.prod(self.obs_shape)) + self.n_actions + 1

    def encode(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               starts: np.ndarray | None = None) -> Encoded:
        """inputs, queries and labels of concatenated episodes (see the modules above)."""
        if self.frames:
            return encode_frame_steps(obs, actions, rewards, starts, self.outcome_steps,
                                      self.outcome_skip)
        return encode_steps(obs, actions, rewards, self.n_actions, starts)

    def step_inputs(self, obs: np.ndarray, prev_actions: np.ndarray,
                    prev_rewards: np.ndarray) -> np.ndarray:
        """Memory inputs of one step of B envs (``prev_actions`` -1 where one starts)."""
        if self.frames:
            return frame_step_inputs(obs, prev_actions, prev_rewards)
        return step_inputs(obs, prev_actions, prev_rewards, self.n_actions)

    def check_obs(self, obs: np.ndarray) -> str | None:
        """Why ``[T, ...]`` observations do not fit this task, or None when they do."""
        if obs.ndim != 1 + len(self.obs_shape) or tuple(obs.shape[1:]) != self.obs_shape:
            return f"obs {obs.shape} (want [T, {', '.join(map(str, self.obs_shape))}])"
        if obs.dtype != np.dtype(self.obs_dtype):
            return f"obs dtype {obs.dtype} (want {self.obs_dtype})"
        return None

    def succeeded(self, final_reward: float, steps: int) -> bool:
        """T-Maze: the junction was right; Two-Colors: the agent survived to the timeout."""
        if self.survive_steps:
            return steps >= self.survive_steps
        return final_reward >= self.success_reward

    def outcomes(self, labels: np.ndarray, surprise: np.ndarray) -> list[int]:
        """Right (1) / wrong (0) predictions of the steps whose outcome needs memory.

        T-Maze: the junction (the last step) within 0.3. Two-Colors: every step whose
        outcome holds a pickup (``|y| > 0.5``) and whose prediction lies on the outcome's
        side of zero with room to spare (``|prediction - y| < |y|``: surprise below ``y²``).
        """
        if not self.frames:
            return [int(surprise[-1] < TMAZE_CORRECT_BELOW)]
        picked = np.flatnonzero(np.abs(labels) > PICKUP_ABOVE)
        return [int(s) for s in surprise[picked] < labels[picked] ** 2]


# The env's FRAME_SHAPE and N_ACTIONS (actor/envs/two_colors; a test keeps them equal).
TWO_COLORS_FRAME = (3, 64, 112)
TWO_COLORS_ACTIONS = 8


def task_spec(config: ClusterConfig) -> TaskSpec:
    """The spec of ``config.task.env``."""
    env = config.task.env
    if env == "tmaze":
        return TaskSpec("tmaze", (3,), "float32", 2, success_reward=4.0)
    if env == "two-colors":
        # Surviving to the timeout is the Two-Colors analogue of success (the return
        # curve is the main measure).
        return TaskSpec("two-colors", TWO_COLORS_FRAME, "uint8", TWO_COLORS_ACTIONS,
                        survive_steps=config.task.length,
                        outcome_steps=config.task.outcome_steps,
                        outcome_skip=config.task.outcome_skip)
    raise ValueError(f"task.env {env!r}: the cluster runs 'tmaze' and 'two-colors'")
