"""The uniform-random data policy of phase I, optionally holding each action for a while.

Pressing a uniformly random button every step makes a ViZDoom agent jitter in place: it
picks items up mostly when they spawn onto it or brush its side, so the frames before a
pickup rarely show the item. Holding each sampled action for a random 1…``hold`` steps
turns the jitter into walks and turns of some length (every action keeps probability
1/A): items are then mostly walked into from view, and the reward of a pickup becomes
predictable from the frames before it — given the remembered pillar colour.
"""

from __future__ import annotations

import numpy as np


class RandomActions:
    """Uniform actions for ``n_envs`` envs, each held for U{1..hold} steps (1: fresh
    every step)."""

    def __init__(self, n_actions: int, n_envs: int, hold: int, rng: np.random.Generator
                 ) -> None:
        if hold < 1:
            raise ValueError(f"hold must be at least 1, got {hold}")
        self.n_actions, self.hold, self.rng = n_actions, hold, rng
        self.current = np.zeros(n_envs, dtype=np.int64)
        self.left = np.zeros(n_envs, dtype=np.int64)  # steps the current action still runs

    def sample(self, first: np.ndarray | None = None) -> np.ndarray:
        """This step's actions; ``first`` ``[B]`` marks envs whose episode just started."""
        if first is not None:
            self.left[first] = 0
        fresh = self.left <= 0
        count = int(fresh.sum())
        if count:
            self.current[fresh] = self.rng.integers(0, self.n_actions, size=count)
            self.left[fresh] = self.rng.integers(1, self.hold + 1, size=count)
        self.left -= 1
        return self.current.copy()
