"""What chooses an actor's actions: the random data policy (phase I) or the published policy.

Inference is batched across the actor's envs: one memory step and one heads call per env
step. The policy weights are swapped in whenever a newer version is fetched; the recurrent
state of every env carries over (a new version changes the function, not the episode).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from actor.random_policy import RandomActions
from common.config import ClusterConfig, action_weights
from common.models import load_flat, policy_parts
from memup.memory import mask_state
from rl.ppo import categorical_sample
from tasks.registry import task_for


class ActingPolicy:
    """Acts for ``n_envs`` envs at once.

    Args:
        config: the run's config (task, memory and policy sizes, PPO mode).
        n_envs: B.
        seed: seeds the random policy and the sampling of actions.
        greedy: take the most likely action instead of sampling (evaluation).
    """

    def __init__(self, config: ClusterConfig, n_envs: int, seed: int,
                 greedy: bool = False) -> None:
        task = task_for(config)
        self.spec = task.spec
        self.lstm = config.ppo.mode == "lstm"
        self.model = task.policy(config).eval()
        self.memory = None if self.lstm else task.networks(config).memory.eval()
        core = self.model if self.lstm else self.memory
        self.state = core.initial_state(n_envs)  # type: ignore[union-attr]
        self.version = 0
        self.greedy = greedy
        self.random = RandomActions(self.spec.n_actions, n_envs,
                                    config.actor.random_hold_steps, np.random.default_rng(seed),
                                    action_weights(config.actor.random_action_weights))
        self.generator = torch.Generator().manual_seed(seed)

    def load(self, version: int, tensors: Mapping[str, torch.Tensor]) -> None:
        """Installs published ``policy`` weights of ``version``."""
        load_flat(policy_parts(self.memory, self.model), tensors)
        self.version = version

    @torch.no_grad()
    def act(self, inputs: np.ndarray, first: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actions, their log-probabilities and value estimates for one step of every env.

        Args:
            inputs: ``[B, ...]`` memory inputs (see :meth:`tasks.base.Task.step_inputs`).
            first: ``[B]`` bool, the env's episode starts at this step (state reset).
        """
        batch = len(inputs)
        self.state = mask_state(self.state, torch.from_numpy(~first))
        if self.version == 0:  # no policy yet: the random data policy of phase I
            actions = self.random.sample(first)
            return actions, self.random.log_probabilities(actions), np.zeros(batch, np.float32)
        x = torch.from_numpy(inputs)
        if self.lstm:
            logits, values, self.state = self.model.step(x, self.state)
        else:
            m, self.state = self.memory(x[:, None], self.state)  # type: ignore[misc]
            logits, values = self.model(m[:, 0], x)
        if self.greedy:
            actions = logits.argmax(-1)
            log_probs = torch.log_softmax(logits, -1).gather(-1, actions[:, None])[:, 0]
        else:
            actions, log_probs = categorical_sample(logits, self.generator)
        return actions.numpy(), log_probs.numpy().astype(np.float32), values.numpy()
