"""``TwoColorsEnv``: the generated Two-Colors scenario as a gymnasium env (memup-spec B.4).

Observation: ``np.uint8 [3, 64, 112]`` RGB, channel-first: the 320 x 180 CRCGCB screen
(HUD, crosshair, weapon, decals, particles and sound off) area-resized to 64 x 112. When an
episode ends (terminated or truncated) the observation is all zeros, as in the reference
(the engine has no screen after a death or a level exit).

Reward per agent step: the engine's living reward over the ``frame_skip`` tics (0.01 per tic;
0 in ``delay``) plus, per pickup counted in this step, +1 for an item of the pillar's colour
and -1 for the other (``delay``: +5 / 0 for the final choice, +0.1 per medikit).
``terminated`` on death or level exit (in ``delay``: on the step of the final pickup);
``truncated`` after ``timeout_steps`` agent steps.

The pickups are read from ammo counters the DECORATE gives the player (see ``decorate``):
there is no ACS, so no ViZDoom USER variables or ACS reward.

Seeding (verified): ``game.set_seed`` before ``new_episode`` repeats the colour and every
item spot; without a seed each engine instance draws its own (two envs made at the same
moment play different episodes).

Speed (``memup bench env``, one env, uniform random actions, frame skip 2, on a 2-core
machine shared with other jobs): 730-950 agent steps/s per core (1,460-1,890 frames/s).
Of a step, the engine's ``make_action`` takes about 0.4 ms, ``get_state`` 0.06 ms and
the resize 0.13 ms when the machine is otherwise idle.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
import vizdoom as vzd
from gymnasium import spaces

from tasks.two_colors.decorate import COLOUR_MARK, COUNTER_WRAP, COUNTERS
from tasks.two_colors.layout import MEDIKIT_REWARD, make_layout
from tasks.two_colors.scenario import MAP_NAME, scenario_path
from tasks.two_colors.screen import AreaResize

FRAME_SHAPE = (3, 64, 112)
SCREEN_HW = (180, 320)
BUTTONS = (vzd.Button.TURN_LEFT, vzd.Button.TURN_RIGHT, vzd.Button.MOVE_FORWARD,
           vzd.Button.MOVE_BACKWARD)
ACTIONS = ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1),
           (1, 0, 1, 0), (1, 0, 0, 1), (0, 1, 1, 0), (0, 1, 0, 1))
"""left, right, forward, backward, left+forward, left+backward, right+forward, right+backward."""
N_ACTIONS = len(ACTIONS)
ACTION_NAMES = ("left", "right", "forward", "backward", "left+forward", "left+backward",
                "right+forward", "right+backward")
GV = vzd.GameVariable
VARIABLES = (GV.HEALTH, *(getattr(GV, f"AMMO{COUNTERS[k][1]}")
                          for k in ("good", "bad", "colour", "medikit")))
"""What the env reads each step, in this order: health, good, bad, colour mark, medikits."""
_COLOURS = {mark: colour for colour, mark in COLOUR_MARK.items()}
_START_TICS = 4
"""Tics a reset may wait for the director's colour mark (it arrives on the first tic)."""


def make_game(wad: str, living_reward: float, objects_info: bool = False) -> vzd.DoomGame:
    """A headless, initialised DoomGame on ``wad``; ``objects_info`` is for tests."""
    game = vzd.DoomGame()
    game.set_doom_scenario_path(wad)
    game.set_doom_map(MAP_NAME)
    game.set_screen_resolution(vzd.ScreenResolution.RES_320X180)
    game.set_screen_format(vzd.ScreenFormat.CRCGCB)
    for setter in (game.set_render_hud, game.set_render_crosshair, game.set_render_weapon,
                   game.set_render_decals, game.set_render_particles, game.set_sound_enabled,
                   game.set_window_visible):
        setter(False)
    game.set_mode(vzd.Mode.PLAYER)
    game.set_available_buttons(list(BUTTONS))
    game.set_available_game_variables(list(VARIABLES))
    game.set_living_reward(living_reward)
    game.set_episode_timeout(0)  # the env truncates, so timeout_steps can be any length
    game.set_objects_info_enabled(objects_info)
    game.init()
    return game


class TwoColorsEnv(gymnasium.Env):
    """The Two-Colors ViZDoom task.

    Args:
        variant: ``"standard"``, ``"hard"`` or ``"delay"``.
        delay_tics: the medikit room's duration in ``delay`` (ignored otherwise).
        floor_damage: ``False`` keeps the nukage look without its damage.
        frame_skip: tics per agent step (the action repeats; rewards are summed).
        timeout_steps: agent steps before truncation; ``None`` = the scenario's limit
            (2100 tics, or 2300 + delay - 2000 in ``delay``, divided by ``frame_skip``).
        seed: seeds the engine RNG (colour, item spots) of the first reset; later resets
            draw their engine seed from a numpy Generator seeded with it. ``None``: the
            engine's own random seed.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    objects_info: ClassVar[bool] = False
    """Subclasses in tests turn this on to read item positions from ``self.game``."""

    def __init__(self, variant: str = "standard", delay_tics: int = 2000,
                 floor_damage: bool = True, frame_skip: int = 2,
                 timeout_steps: int | None = None, seed: int | None = None) -> None:
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        self.layout = make_layout(variant, delay_tics, floor_damage)
        self.frame_skip = int(frame_skip)
        limit = -(-self.layout.timeout_tics // self.frame_skip)
        self.timeout_steps = limit if timeout_steps is None else int(timeout_steps)
        if self.timeout_steps < 1:
            raise ValueError(f"timeout_steps must be >= 1, got {timeout_steps}")
        self.observation_space = spaces.Box(0, 255, shape=FRAME_SHAPE, dtype=np.uint8)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.wad = scenario_path(variant, delay_tics, floor_damage)
        self.game = make_game(str(self.wad), self.layout.living_reward, self.objects_info)
        self._resize = AreaResize(SCREEN_HW, FRAME_SHAPE[1:])
        self._actions = [list(a) for a in ACTIONS]
        self._seeds: np.random.Generator | None = None
        self._next_seed: int | None = None
        self._seed(seed)
        self._vars = np.zeros(len(VARIABLES))
        self._counts = np.zeros(3, dtype=np.int64)
        """Pickups this episode: good, bad, medikits."""
        self._steps = 0
        self._return = 0.0
        self._pillar = "red"
        self._done = True

    def _seed(self, seed: int | None) -> None:
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
            self._next_seed = int(seed) % 2**32  # the engine takes an unsigned 32-bit seed

    def _read(self) -> tuple[np.ndarray, Any]:
        """The tracked game variables (also after the episode has finished) and the state
        (``None`` then); one ``get_state`` per step, as each call copies the screen."""
        state = self.game.get_state()
        if state is not None:
            return np.asarray(state.game_variables, dtype=np.float64), state
        return np.array([self.game.get_game_variable(v) for v in VARIABLES]), None

    def _info(self) -> dict[str, Any]:
        good, bad, medikits = self._counts.tolist()
        return {"pillar": self._pillar, "good_pickups": good, "bad_pickups": bad,
                "medikits": medikits, "steps": self._steps,
                "health": max(0, int(self._vars[0]))}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; ``seed`` reseeds as the constructor's ``seed`` does."""
        super().reset(seed=seed)
        self._seed(seed)
        if self._next_seed is not None:
            self.game.set_seed(self._next_seed)
        if self._seeds is not None:
            self._next_seed = int(self._seeds.integers(2**31 - 1))
        self.game.new_episode()
        self._vars, state = self._read()
        for _ in range(_START_TICS):
            if self._vars[3] or state is None:
                break
            self.game.advance_action(1)
            self._vars, state = self._read()
        mark = int(self._vars[3])
        if mark not in _COLOURS or state is None:
            raise RuntimeError(f"the scenario gave no colour mark (AMMO slot value {mark}); "
                               f"is {self.wad} a Two-Colors WAD?")
        self._pillar = _COLOURS[mark]
        self._counts[:] = 0
        self._steps, self._return, self._done = 0, 0.0, False
        return self._resize(state.screen_buffer), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One agent step: ``action`` held for ``frame_skip`` tics."""
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset()")
        reward = float(self.game.make_action(self._actions[int(action)], self.frame_skip))
        before = self._vars
        self._vars, state = self._read()
        # The counters wrap (see decorate), so read each step's change modulo the wrap.
        new = (self._vars[[1, 2, 4]] - before[[1, 2, 4]]).astype(np.int64) % COUNTER_WRAP
        self._counts += new
        good, bad, medikits = new.tolist()
        reward += (good * self.layout.good_reward + bad * self.layout.bad_reward
                   + medikits * MEDIKIT_REWARD * (self.layout.variant == "delay"))
        self._steps += 1
        self._return += reward
        # A choice item in ``delay`` ends the level a few tics after the pickup: end the
        # episode on the pickup's own step instead.
        terminated = state is None or (self.layout.variant == "delay" and good + bad > 0)
        truncated = not terminated and self._steps >= self.timeout_steps
        info = self._info()
        if terminated or truncated:
            self._done = True
            info["episode_return"] = self._return
            info["survival_steps"] = self._steps
            return np.zeros(FRAME_SHAPE, dtype=np.uint8), reward, terminated, truncated, info
        return self._resize(state.screen_buffer), reward, terminated, truncated, info

    def close(self) -> None:
        self.game.close()
