"""The random data policy of phase I: each action drawn from fixed weights and held a while.

Pressing a uniformly random button every step makes a first-person agent jitter in place:
it picks items up mostly when they spawn onto it or brush its side, so the frames before a
pickup rarely show the item. Holding each sampled action for a random 1…``hold`` steps
turns the jitter into walks and turns of some length: items are then mostly walked into.
Walking *backwards* into an item still hides it (it is behind the camera), so such a task
draws the actions with weights that favour the forward moves (``actor.random_action_weights``):
what the memory must explain is then visible in the frames before each pickup.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def action_probabilities(weights: Sequence[float], n_actions: int) -> np.ndarray:
    """Normalised probabilities from relative ``weights`` (empty: uniform). Their values
    are checked where the config is loaded (``common.config.action_weights``); their count
    is known only here.

    Raises:
        ValueError: not one weight per action.
    """
    if len(weights) == 0:
        return np.full(n_actions, 1.0 / n_actions)
    if len(weights) != n_actions:
        raise ValueError(f"action weights {list(weights)}: need {n_actions} non-negative "
                         f"numbers, one per action")
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


class RandomActions:
    """Random actions for ``n_envs`` envs, each held for U{1..hold} steps (1: fresh every
    step), drawn with ``weights`` (default uniform)."""

    def __init__(self, n_actions: int, n_envs: int, hold: int, rng: np.random.Generator,
                 weights: Sequence[float] = ()) -> None:
        if hold < 1:
            raise ValueError(f"hold must be at least 1, got {hold}")
        self.n_actions, self.hold, self.rng = n_actions, hold, rng
        self.probabilities = action_probabilities(weights, n_actions)
        self.uniform = bool(np.allclose(self.probabilities, 1.0 / n_actions))
        self.current = np.zeros(n_envs, dtype=np.int64)
        self.left = np.zeros(n_envs, dtype=np.int64)  # steps the current action still runs

    def log_probabilities(self, actions: np.ndarray) -> np.ndarray:
        """Log-probability of drawing each of ``actions`` (float32)."""
        return np.log(self.probabilities[np.asarray(actions)]).astype(np.float32)

    def sample(self, first: np.ndarray | None = None) -> np.ndarray:
        """This step's actions; ``first`` ``[B]`` marks envs whose episode just started."""
        if first is not None:
            self.left[first] = 0
        fresh = self.left <= 0
        count = int(fresh.sum())
        if count:
            # uniform keeps the integers draw, so existing seeds replay the same actions
            self.current[fresh] = (self.rng.integers(0, self.n_actions, size=count)
                                   if self.uniform else
                                   self.rng.choice(self.n_actions, size=count,
                                                   p=self.probabilities))
            self.left[fresh] = self.rng.integers(1, self.hold + 1, size=count)
        self.left -= 1
        return self.current.copy()
