"""ViZDoom Two-Colors: a generated scenario (no third-party WAD, no ACS) and its env."""

from actor.envs.two_colors.env import ACTION_NAMES, FRAME_SHAPE, N_ACTIONS, TwoColorsEnv
from actor.envs.two_colors.layout import VARIANTS
from actor.envs.two_colors.scenario import build_scenario, scenario_path

__all__ = ["ACTION_NAMES", "FRAME_SHAPE", "N_ACTIONS", "VARIANTS", "TwoColorsEnv",
           "build_scenario", "scenario_path"]
