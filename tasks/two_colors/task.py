"""The Two-Colors task: its env (ViZDoom, imported only by actors), outcomes and extras.

``task.length`` is the episode limit in agent steps; ``task.variant``, ``task.delay_tics``,
``task.floor_damage`` and ``task.data_floor_damage_share`` shape the env;
``task.outcome_steps`` and ``task.outcome_skip`` the outcome MemUP predicts.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from common.config import ClusterConfig
from memup.networks import TaskNets
from tasks.base import Task, TaskSpec
from tasks.frames import forward_sums
from tasks.two_colors.networks import two_colors_nets

# The env's FRAME_SHAPE and N_ACTIONS (tasks/two_colors/env.py imports ViZDoom; a test
# keeps them equal).
FRAME_SHAPE = (3, 64, 112)
N_ACTIONS = 8
PICKUP_ABOVE = 0.5
"""|reward| of a step with a pickup (±1 + living reward)."""


def data_slot_damaged(share: float, slot: int) -> bool:
    """Whether data env ``slot`` has the damaging floor: ``share`` of the slots, spread."""
    return int((slot + 1) * share) > int(slot * share)


class TwoColorsTask(Task):
    """``task.env = "two-colors"``: surviving to the timeout is its success (the return curve
    is the main measure); the outcome of step k sums the next ``task.outcome_steps``
    rewards from ``task.outcome_skip`` steps on."""

    spec = TaskSpec(FRAME_SHAPE, "uint8", N_ACTIONS)
    frame_skip = 2
    bench_config = "up_two_colors.toml"

    def __init__(self, config: ClusterConfig) -> None:
        super().__init__(config)
        task = config.task
        same = 1.0 if task.floor_damage else 0.0
        self.swaps_data_envs = task.data_floor_damage_share != same

    def make_env(self, slot: int = 0, data_policy: bool = False) -> gymnasium.Env:
        """``data_policy``: ``task.data_floor_damage_share`` of the slots (spread) have the
        damaging floor instead of ``task.floor_damage`` deciding it."""
        from tasks.two_colors.env import TwoColorsEnv

        task = self.config.task
        damage = data_slot_damaged(task.data_floor_damage_share, slot) if data_policy \
            else task.floor_damage
        return TwoColorsEnv(variant=task.variant, delay_tics=task.delay_tics,
                            floor_damage=damage, frame_skip=self.frame_skip,
                            timeout_steps=task.length)

    def outcomes(self, rewards: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The sum of the rewards of steps k+skip … k+skip+n-1 (see
        :func:`tasks.frames.encode_frame_steps`)."""
        task = self.config.task
        return forward_sums(rewards, starts, task.outcome_steps, task.outcome_skip)

    def succeeded(self, final_reward: float, steps: int, total_return: float) -> bool:
        """The agent survived to the timeout."""
        del final_reward, total_return
        return steps >= self.config.task.length

    def hits(self, labels: np.ndarray, surprise: np.ndarray) -> list[int]:
        """Every step whose outcome holds a pickup (``|y| > 0.5``) and whose prediction lies
        on the outcome's side of zero with room to spare (surprise below ``y²``)."""
        picked = np.flatnonzero(np.abs(labels) > PICKUP_ABOVE)
        return [int(s) for s in surprise[picked] < labels[picked] ** 2]

    def networks(self, config: ClusterConfig) -> TaskNets:
        m = config.memup
        return two_colors_nets(m.hidden, self.spec.obs_shape, self.spec.n_actions,  # type: ignore[arg-type]
                               m.cnn, chrono_horizon=self.chrono_horizon(config),
                               interaction=m.interaction, reconstruct=m.reconstruction > 0,
                               query_shift=m.query_shift,
                               predictor_dropout=m.predictor_dropout)

    def rollout_stats(self, rewards: np.ndarray) -> dict[str, Any]:
        """Whether the policy picks the right items."""
        return {"good_pickups": int(np.sum(rewards > PICKUP_ABOVE)),
                "bad_pickups": int(np.sum(rewards < -PICKUP_ABOVE))}

    def episode_stats(self, info: dict[str, Any]) -> dict[str, Any]:
        return {"pillar": info["pillar"], "good": int(info["good_pickups"]),
                "bad": int(info["bad_pickups"])}

    def bench_conditions(self) -> dict[str, Any]:
        return {"variant": self.config.task.variant,
                "resolution": f"320x180 rendered, area-resized to {FRAME_SHAPE[2]}x"
                              f"{FRAME_SHAPE[1]} RGB"}

    def bench_episodes(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        """Items picked up per episode and the share of them of the pillar's colour."""
        good = sum(int(info.get("good_pickups", 0)) for info in infos)
        bad = sum(int(info.get("bad_pickups", 0)) for info in infos)
        return {"pickups_per_episode": round((good + bad) / len(infos), 3) if infos else None,
                "good_pickup_share": round(good / (good + bad), 3) if good + bad else None}

    def memory_probe(self) -> Any:
        """The pillar-colour and pickup-sign probes (:func:`tasks.two_colors.probe_run.run`)."""
        from tasks.two_colors.probe_run import run

        return run
