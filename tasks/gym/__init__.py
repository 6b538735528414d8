"""Any gymnasium env with Discrete actions as a task (:mod:`tasks.gym.task`)."""

from tasks.gym.task import GymTask

__all__ = ["GymTask"]
