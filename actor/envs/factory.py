"""The env of a run's task, built from its config (ViZDoom is imported only when used)."""

from __future__ import annotations

import gymnasium

from common.config import ClusterConfig


def make_env(config: ClusterConfig, data_policy: bool = False, slot: int = 0
             ) -> gymnasium.Env:
    """A fresh env of ``config.task``.

    Args:
        config: the run's config.
        data_policy: the env the uniform-random data policy plays in phase I (Two-Colors:
            ``task.data_floor_damage_share`` decides the floor instead of ``floor_damage``).
        slot: the env's slot in its actor (spreads the data envs' floors).
    """
    task = config.task
    if task.env == "tmaze":
        from actor.envs.tmaze import TMazeEnv

        return TMazeEnv(task.mode, task.length)
    if task.env == "two-colors":
        from actor.envs.two_colors import TwoColorsEnv

        damage = data_slot_damaged(task.data_floor_damage_share, slot) if data_policy \
            else task.floor_damage
        return TwoColorsEnv(variant=task.variant, delay_tics=task.delay_tics,
                            floor_damage=damage, timeout_steps=task.length)
    raise ValueError(f"task.env {task.env!r}: the cluster runs 'tmaze' and 'two-colors'")


def data_slot_damaged(share: float, slot: int) -> bool:
    """Whether data env ``slot`` has the damaging floor: ``share`` of the slots, spread."""
    return int((slot + 1) * share) > int(slot * share)


def data_env_differs(config: ClusterConfig) -> bool:
    """Whether phase I's data envs differ from the policy's (actors then swap envs)."""
    task = config.task
    same = 1.0 if task.floor_damage else 0.0
    return task.env == "two-colors" and task.data_floor_damage_share != same
