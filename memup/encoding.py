"""How RL steps become memory inputs, predictor queries and labels (vector observations).

The memory reads ``[o_t, onehot(a_{t-1}), r_{t-1}]`` (zeros for the previous action and
reward at an episode's first step); the predictor is asked about ``[o_k, onehot(a_k)]`` and
its label is ``r_k``. Actors build the same inputs one step at a time with
:func:`step_inputs`, scorers and the learner whole episodes with :func:`encode_steps`, so the
memory sees identical features in every role.
"""

from __future__ import annotations

import numpy as np


def encode_steps(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, n_actions: int,
                 starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encodes concatenated episodes; ``starts`` are the rows where episodes begin (default 0).

    Args:
        obs: ``[S, D]`` observations seen before each action.
        actions: ``[S]`` integer actions.
        rewards: ``[S]`` rewards received for each action.
        n_actions: size of the discrete action space.
        starts: first row of every episode in the stream.

    Returns:
        inputs ``[S, D + A + 1]``, queries ``[S, D + A]`` and labels ``[S]``, all float32.
    """
    obs = np.asarray(obs, dtype=np.float32)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[0] != len(actions) or rewards.shape != actions.shape:
        raise ValueError(f"shape mismatch: obs {obs.shape}, actions {actions.shape}, "
                         f"rewards {rewards.shape}")
    n_steps, obs_dim = obs.shape
    inputs = np.zeros((n_steps, obs_dim + n_actions + 1), dtype=np.float32)
    queries = np.zeros((n_steps, obs_dim + n_actions), dtype=np.float32)
    inputs[:, :obs_dim] = obs
    queries[:, :obs_dim] = obs
    # One column per action is much faster than a 2-D fancy-index scatter on long streams.
    for a in range(n_actions):
        queries[:, obs_dim + a] = actions == a
        inputs[1:, obs_dim + a] = queries[:-1, obs_dim + a]
    inputs[1:, -1] = rewards[:-1]
    # The shift above runs over the whole stream; clear each episode's first step so nothing
    # leaks across episode boundaries.
    inputs[np.array([0]) if starts is None else starts, obs_dim:] = 0.0
    return inputs, queries, rewards


def step_inputs(obs: np.ndarray, prev_actions: np.ndarray, prev_rewards: np.ndarray,
                n_actions: int) -> np.ndarray:
    """Memory inputs of one step of B envs; ``prev_actions`` is -1 where an episode starts.

    Args:
        obs: ``[B, D]`` current observations.
        prev_actions: ``[B]`` previous actions, -1 at an episode's first step.
        prev_rewards: ``[B]`` previous rewards (ignored where ``prev_actions`` is -1).
        n_actions: size of the discrete action space.

    Returns:
        ``[B, D + A + 1]`` float32, row b equal to the row :func:`encode_steps` gives that step.
    """
    obs = np.asarray(obs, dtype=np.float32)
    batch, obs_dim = obs.shape
    out = np.zeros((batch, obs_dim + n_actions + 1), dtype=np.float32)
    out[:, :obs_dim] = obs
    started = prev_actions >= 0
    rows = np.flatnonzero(started)
    out[rows, obs_dim + prev_actions[rows]] = 1.0
    out[:, -1] = np.where(started, prev_rewards, 0.0)
    return out
