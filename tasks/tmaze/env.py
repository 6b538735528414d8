"""T-Maze (AMRL-style) environment, its wrapper, and a vectorised random-policy episode generator.

Spec: memup-spec B.1. The agent sees a hint (-1 left / +1 right) only at t = 0, walks a
corridor where actions do nothing, and at the junction (t = length - 1) its action decides
the episode: +4 if it matches the clue side, -3 otherwise.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from memup.encoding import encode_steps, step_inputs
from memup.episode import Episode
from memup.lazy import BlockArray, BlockCache, LazyEpisode

SUCCESS_REWARD = 4.0
FAILURE_REWARD = -3.0
LENGTH_DEVIATION = 10  # "R" modes add U{0, ..., 10} (inclusive) to the corridor length.
MODES = ("L", "LN", "LR", "LNR")
OBS_DIM = 3
N_ACTIONS = 2


def _parse_mode(mode: str) -> tuple[bool, bool]:
    """Return ``(noise, random_length)`` flags for a mode string such as ``"LNR"``."""
    if mode not in MODES:
        raise ValueError(f"unknown T-Maze mode {mode!r}; expected one of {MODES}")
    return "N" in mode, "R" in mode


class TMazeEnv(gymnasium.Env):
    """T-Maze with a clue at t = 0 and a decision at the junction step.

    Args:
        mode: ``"L"``, ``"LN"``, ``"LR"`` or ``"LNR"`` (N = noise bit, R = random length).
        length: the minimal corridor length L (number of actions per episode without R).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, mode: str = "LNR", length: int = 100) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.mode = mode
        self.length = int(length)
        self.noise, self.random_length = _parse_mode(mode)
        self.max_episode_steps = self.length + (LENGTH_DEVIATION if self.random_length else 0)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._clue = 0
        self._episode_len = self.length
        self._t = 0
        self._done = True

    def _obs(self) -> np.ndarray:
        """Observation at the current step ``self._t`` of a running episode."""
        obs = np.zeros(OBS_DIM, dtype=np.float32)
        if self._t == 0:
            obs[0] = -1.0 if self._clue == 0 else 1.0
        if self._t == self._episode_len - 1:
            obs[1] = 1.0
        if self.noise:
            obs[2] = float(self.np_random.integers(0, 2) * 2 - 1)
        return obs

    def _info(self, success: bool = False, reward: float = 0.0) -> dict[str, Any]:
        return {
            "episode_success": success,
            "episode_reward": reward,
            "clue": self._clue,
            "episode_len": self._episode_len,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: seeds gymnasium's ``np_random``.
            options: may force ``"clue"`` (0 left / 1 right) and ``"length"`` (number of
                actions); used to replay externally generated episodes.

        Returns:
            The t = 0 observation and the info dict.
        """
        super().reset(seed=seed)
        options = options or {}
        # Draw both values even when forced, so forcing one does not shift the RNG stream.
        clue = int(self.np_random.integers(0, 2))
        extra = int(self.np_random.integers(0, LENGTH_DEVIATION + 1)) if self.random_length else 0
        self._clue = int(options.get("clue", clue))
        self._episode_len = int(options.get("length", self.length + extra))
        if self._clue not in (0, 1) or self._episode_len < 1:
            raise ValueError(f"invalid reset options {options}")
        self._t = 0
        self._done = False
        return self._obs(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one step; the action only matters at the junction step."""
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}")
        if self._t == self._episode_len - 1:
            success = int(action) == self._clue
            reward = SUCCESS_REWARD if success else FAILURE_REWARD
            self._done = True
            obs = np.zeros(OBS_DIM, dtype=np.float32)
            return obs, reward, True, False, self._info(success, reward)
        self._t += 1
        return self._obs(), 0.0, False, False, self._info()


class PrevActionReward(gymnasium.Wrapper):
    """Adds the previous action (one-hot) and previous reward to the observation dict."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError("PrevActionReward needs a Discrete action space")
        self._n_actions = int(env.action_space.n)
        self.observation_space = spaces.Dict(
            {
                "observation": env.observation_space,
                "prev_action": spaces.Box(0.0, 1.0, shape=(self._n_actions,), dtype=np.float32),
                "prev_reward": spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32),
            }
        )

    def _wrap(self, obs: np.ndarray, action: int | None, reward: float) -> dict[str, np.ndarray]:
        prev_action = np.zeros(self._n_actions, dtype=np.float32)
        if action is not None:
            prev_action[int(action)] = 1.0
        return {
            "observation": np.asarray(obs, dtype=np.float32),
            "prev_action": prev_action,
            "prev_reward": np.array([reward], dtype=np.float32),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the inner env; previous action and reward are zeros."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._wrap(obs, None, 0.0), info

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Step the inner env and record this action and reward for the next observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._wrap(obs, action, float(reward)), reward, terminated, truncated, info


def tmaze_episode(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> Episode:
    """Encode one T-Maze episode as an :class:`Episode`.

    Args:
        obs: ``[T, 3]`` observations seen before each action.
        actions: ``[T]`` actions (0 / 1).
        rewards: ``[T]`` rewards received for each action.

    Returns:
        Episode with inputs ``[obs, onehot(prev_action), prev_reward]`` ``[T, 6]``, queries
        ``[obs, onehot(action)]`` ``[T, 5]`` and labels = rewards ``[T]``, all float32.
    """
    obs = np.asarray(obs, dtype=np.float32)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=np.float32)
    if obs.shape != (len(actions), OBS_DIM) or rewards.shape != actions.shape:
        raise ValueError(
            f"shape mismatch: obs {obs.shape}, actions {actions.shape}, rewards {rewards.shape}"
        )
    inputs, queries, labels = encode_steps(obs, actions, rewards, N_ACTIONS)
    return Episode(inputs=inputs, queries=queries, labels=labels)


def random_tmaze_episodes(
    n: int, length: int, mode: str, rng: np.random.Generator
) -> list[Episode]:
    """Generate ``n`` T-Maze episodes of a uniform-random policy without a per-step loop.

    Dynamics match :class:`TMazeEnv` exactly (the RNG stream differs).

    Args:
        n: number of episodes.
        length: minimal corridor length L.
        mode: ``"L"``, ``"LN"``, ``"LR"`` or ``"LNR"``.
        rng: source of randomness.

    Returns:
        ``n`` episodes encoded as in :func:`tmaze_episode`; each owns its arrays.
    """
    noise, random_length = _parse_mode(mode)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if n <= 0:
        return []
    lengths = np.full(n, length, dtype=np.int64)
    if random_length:
        lengths += rng.integers(0, LENGTH_DEVIATION + 1, size=n)
    clues = rng.integers(0, 2, size=n)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    n_steps = int(ends[-1])

    obs = np.zeros((n_steps, OBS_DIM), dtype=np.float32)
    obs[starts, 0] = np.where(clues == 0, -1.0, 1.0)
    obs[ends - 1, 1] = 1.0
    if noise:
        obs[:, 2] = rng.integers(0, 2, size=n_steps, dtype=np.int8) * 2 - 1
    actions = rng.integers(0, N_ACTIONS, size=n_steps, dtype=np.int64)
    rewards = np.zeros(n_steps, dtype=np.float32)
    rewards[ends - 1] = np.where(actions[ends - 1] == clues, SUCCESS_REWARD, FAILURE_REWARD)

    inputs, queries, labels = encode_steps(obs, actions, rewards, N_ACTIONS, starts)
    # Copy each slice so one episode never pins the whole batch's memory (e.g. in a buffer).
    return [
        Episode(inputs=inputs[s:e].copy(), queries=queries[s:e].copy(), labels=labels[s:e].copy())
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


# -- lazily generated episodes: regenerated block by block from a few numbers ---------------

LAZY_BLOCK = 1024  # steps generated together (a lane's slice and its target read ~2 blocks)


def lazy_tmaze_episodes(
    n: int, length: int, mode: str, rng: np.random.Generator
) -> list[LazyEpisode]:
    """``n`` random-policy T-Maze episodes that are never held whole (see :mod:`memup.lazy`).

    Same dynamics and encoding as :func:`random_tmaze_episodes` (the RNG stream differs):
    each episode draws a seed, its length and its clue here; its steps come from
    per-block generators seeded by ``(seed, block)``, so any block can be made alone.

    Returns:
        Episodes whose ``spec`` is ``[seed, length, clue, noise]``.
    """
    noise, random_length = _parse_mode(mode)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    seeds = rng.integers(0, 2**62, size=n)
    lengths = np.full(n, length, dtype=np.int64)
    if random_length:
        lengths += rng.integers(0, LENGTH_DEVIATION + 1, size=n)
    clues = rng.integers(0, 2, size=n)
    return [lazy_tmaze_episode(np.array([s, t, c, int(noise)], np.int64))
            for s, t, c in zip(seeds.tolist(), lengths.tolist(), clues.tolist(), strict=True)]


def lazy_tmaze_episode(spec: np.ndarray) -> LazyEpisode:
    """The lazy episode of ``spec = [seed, length, clue, noise]``."""
    seed, length, clue, noise = (int(v) for v in spec)
    cache = BlockCache(lambda j: _tmaze_block(seed, length, clue, bool(noise), j))
    inputs = BlockArray(cache, 0, length, LAZY_BLOCK, (OBS_DIM + N_ACTIONS + 1,), np.float32)
    queries = BlockArray(cache, 1, length, LAZY_BLOCK, (OBS_DIM + N_ACTIONS,), np.float32)
    labels = BlockArray(cache, 2, length, LAZY_BLOCK, (), np.float32)
    return LazyEpisode(inputs, queries, labels, spec=np.asarray(spec, np.int64))  # type: ignore[arg-type]


def _block_draws(seed: int, j: int, n: int, noise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Actions and noise bits of block ``j`` (``n`` steps), from its own generator."""
    rng = np.random.default_rng([seed, j])
    actions = rng.integers(0, N_ACTIONS, size=n, dtype=np.int64)
    bits = (rng.integers(0, 2, size=n, dtype=np.int8) * 2 - 1) if noise else None
    return actions, bits  # type: ignore[return-value]


def _tmaze_block(seed: int, length: int, clue: int, noise: bool, j: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, queries and labels of steps ``[j·B, min((j+1)·B, length))``."""
    start = j * LAZY_BLOCK
    end = min(start + LAZY_BLOCK, length)
    if not 0 <= start < end:
        raise IndexError(f"block {j} is outside an episode of {length} steps")
    n = end - start
    actions, bits = _block_draws(seed, j, n, noise)
    obs = np.zeros((n, OBS_DIM), dtype=np.float32)
    if start == 0:
        obs[0, 0] = -1.0 if clue == 0 else 1.0
    if end == length:
        obs[-1, 1] = 1.0
    if noise:
        obs[:, 2] = bits
    prev = np.empty(n, dtype=np.int64)
    prev[1:] = actions[:-1]
    # The previous block is always full, so its last action is its draw's last element.
    prev[0] = -1 if j == 0 else _block_draws(seed, j - 1, LAZY_BLOCK, noise)[0][-1]
    rewards = np.zeros(n, dtype=np.float32)
    if end == length:
        rewards[-1] = SUCCESS_REWARD if actions[-1] == clue else FAILURE_REWARD
    # Only the junction step pays, so every step's previous reward inside an episode is 0.
    inputs = step_inputs(obs, prev, np.zeros(n, np.float32), N_ACTIONS)
    queries = np.zeros((n, OBS_DIM + N_ACTIONS), dtype=np.float32)
    queries[:, :OBS_DIM] = obs
    queries[np.arange(n), OBS_DIM + actions] = 1.0
    return inputs, queries, rewards
