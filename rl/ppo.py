"""PPO over whole episodes: GAE on padded rows, and a clipped-surrogate trainer.

Episodes reach the learner as whole sequences padded to a common length with a validity
mask, so a minibatch is a set of whole episodes and recurrent models run over the full
sequence. Every mean is taken over valid steps only; padding never changes a result.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from rl.ppo_config import PPOConfig


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
        last_values: torch.Tensor, terminal: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates of ``[N, T]`` rows of valid steps followed by padding.

    Args:
        rewards: ``[N, T]`` reward after each step.
        values: ``[N, T]`` value estimates V(s_t).
        mask: ``[N, T]`` bool, True on valid steps (a prefix of each row).
        last_values: ``[N]`` V of the state after a row's last valid step.
        terminal: ``[N]`` bool; a terminal row has nothing to bootstrap from, a truncated
            one bootstraps from ``last_values``.
        gamma: discount.
        lam: GAE λ.

    Returns:
        advantages and returns (advantages + values), both ``[N, T]`` and zero on padding.
    """
    mask = mask.bool()
    zero = torch.zeros_like(last_values)
    bootstrap = torch.where(terminal.bool(), zero, last_values)
    advantages = torch.zeros_like(values)
    running = zero
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        next_valid = mask[:, t + 1] if t + 1 < steps else torch.zeros_like(mask[:, t])
        # At a row's last valid step the next value is the bootstrap and the λ-sum restarts.
        next_value = values[:, t + 1] if t + 1 < steps else zero
        next_value = torch.where(next_valid, next_value, bootstrap)
        carried = torch.where(next_valid, running, zero)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = torch.where(mask[:, t], delta + gamma * lam * carried, zero)
        advantages[:, t] = running
    returns = torch.where(mask, advantages + values, torch.zeros_like(values))
    return advantages, returns


@dataclass
class RolloutBatch:
    """``N`` episodes padded to ``T`` steps, as the behaviour policy played them."""

    #: [N, T, ...] whatever the model reads: a tensor, or a bundle indexable like one
    #: (e.g. rl.policy.FramePolicyInputs)
    inputs: Any
    actions: torch.Tensor  # [N, T] long
    rewards: torch.Tensor  # [N, T]
    log_probs: torch.Tensor  # [N, T] behaviour log-prob of the taken action
    values: torch.Tensor  # [N, T] behaviour value estimates
    mask: torch.Tensor  # [N, T] bool, valid steps first
    terminal: torch.Tensor  # [N] bool
    last_values: torch.Tensor  # [N] V after the last valid step (used when not terminal)

    def to(self, device: torch.device | str) -> RolloutBatch:
        """A copy with every tensor on ``device``."""
        return RolloutBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def log_prob_entropy(logits: torch.Tensor,
                     actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` ``[...]`` and entropy of the ``[..., A]`` logits."""
    log_p = torch.log_softmax(logits, dim=-1)
    taken = log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return taken, entropy


@torch.no_grad()
def categorical_sample(logits: torch.Tensor, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples actions ``[...]`` from ``[..., A]`` logits; returns them and their log-probs."""
    probs = torch.softmax(logits.reshape(-1, logits.shape[-1]).float(), dim=-1)
    actions = torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1])
    log_probs, _ = log_prob_entropy(logits, actions)
    return actions, log_probs


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over True entries of ``mask``; ``where`` keeps padding out of the sum."""
    return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp(min=1)


class PPOTrainer:
    """Clipped-surrogate PPO on whole-episode minibatches.

    Advantages come from the batch's own (behaviour) ``values`` through :func:`gae`, once
    per update; the same values are the "old" values of the optional value clip. The
    model's train/eval mode is left to the caller (dropout stays on in train mode).

    Args:
        model: has ``forward_sequence(inputs [N, T, ...], mask [N, T]) -> (logits, values)``.
        config: PPO hyper-parameters.
        device: where batches are moved for training.
        params: trained parameters (default: ``model``'s that require grad), e.g. heads only.
    """

    def __init__(self, model: nn.Module, config: PPOConfig, device: torch.device | str = "cpu",
                 params: list[nn.Parameter] | None = None) -> None:
        self.model = model
        self.config = config
        self.device = device
        if params is None:  # frozen parts (requires_grad False) are not the optimiser's
            params = [p for p in model.parameters() if p.requires_grad]
        self.params = list(params)
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr)
        self.updates = 0

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """Trains ``epochs`` passes over shuffled whole-episode minibatches of ``batch``.

        Returns the mean policy_loss, value_loss, entropy, approx_kl and clip_fraction of
        the minibatch steps, the explained variance of the behaviour values, and updates
        (the number of minibatch steps done).
        """
        cfg = self.config
        batch = batch.to(self.device)
        mask = batch.mask.bool()
        # Padded actions may be any filler; keep them valid indices for gather.
        actions = torch.where(mask, batch.actions.long(), torch.zeros_like(batch.actions.long()))
        advantages, returns = gae(batch.rewards, batch.values, mask, batch.last_values,
                                  batch.terminal, cfg.gamma, cfg.lam)
        if cfg.normalize_advantages:
            mean = masked_mean(advantages, mask)
            std = masked_mean((advantages - mean) ** 2, mask).sqrt()
            advantages = torch.where(mask, (advantages - mean) / (std + 1e-8),
                                     torch.zeros_like(advantages))
        totals = dict.fromkeys(("policy_loss", "value_loss", "entropy", "approx_kl",
                                "clip_fraction"), 0.0)
        steps = 0
        episodes = batch.mask.shape[0]
        for _ in range(cfg.epochs):
            epoch_kl, epoch_steps = 0.0, 0
            for idx in torch.randperm(episodes).split(cfg.minibatch_episodes):
                idx = idx.to(mask.device)
                stats = self._minibatch_step(batch, actions[idx], advantages[idx],
                                             returns[idx], idx)
                for key, value in stats.items():
                    totals[key] += value
                epoch_kl += stats["approx_kl"]
                epoch_steps += 1
                steps += 1
            if cfg.target_kl is not None and epoch_kl / epoch_steps > 1.5 * cfg.target_kl:
                break
        self.updates += steps
        result = {key: value / max(steps, 1) for key, value in totals.items()}
        result["explained_variance"] = explained_variance(batch.values, returns, mask)
        result["updates"] = float(steps)
        return result

    def _minibatch_step(self, batch: RolloutBatch, actions: torch.Tensor,
                        advantages: torch.Tensor, returns: torch.Tensor,
                        idx: torch.Tensor) -> dict[str, float]:
        """One Adam step on the episodes ``idx``; returns that minibatch's statistics."""
        cfg = self.config
        mask = batch.mask[idx].bool()
        logits, values = self.model.forward_sequence(batch.inputs[idx], mask)
        log_probs, entropy = log_prob_entropy(logits, actions)
        log_ratio = torch.where(mask, log_probs - batch.log_probs[idx],
                                torch.zeros_like(log_probs))
        ratio = log_ratio.exp()
        surrogate = torch.min(ratio * advantages,
                              ratio.clamp(1.0 - cfg.clip, 1.0 + cfg.clip) * advantages)
        policy_loss = -masked_mean(surrogate, mask)
        value_error = (values - returns) ** 2
        if cfg.value_clip is not None:
            old = batch.values[idx]
            clipped = old + (values - old).clamp(-cfg.value_clip, cfg.value_clip)
            value_error = torch.max(value_error, (clipped - returns) ** 2)
        value_loss = 0.5 * masked_mean(value_error, mask)
        mean_entropy = masked_mean(entropy, mask)
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * mean_entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            # The low-variance k3 estimator of KL(behaviour ‖ current).
            approx_kl = masked_mean(ratio - 1.0 - log_ratio, mask)
            clipped_steps = ((ratio - 1.0).abs() > cfg.clip).float()
            clip_fraction = masked_mean(clipped_steps, mask)
        return {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": mean_entropy.item(),
            "approx_kl": approx_kl.item(),
            "clip_fraction": clip_fraction.item(),
        }

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])


def explained_variance(values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor) -> float:
    """``1 − Var(returns − values) / Var(returns)`` over valid steps (nan if returns are flat)."""
    with torch.no_grad():
        var_returns = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
        residual = returns - values
        var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
        if var_returns.item() == 0.0:
            return float("nan")
        return (1.0 - var_residual / var_returns).item()
