"""PPO's hyper-parameters and their defaults (no torch: configs and CLIs import it).

:class:`PPOConfig` is the one source of every PPO default: ``common.config``'s ``[ppo]``
section takes the shared ones from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters.

    Attributes:
        lr: Adam learning rate (3e-4: what every shipped ``memup up`` run trained with).
        clip: ratio clip ε of the surrogate objective.
        value_coef: weight of the value loss.
        entropy_coef: weight of the entropy bonus.
        epochs: passes over the batch per update.
        minibatch_episodes: whole episodes per minibatch.
        gamma: discount.
        lam: GAE λ.
        max_grad_norm: global gradient-norm clip.
        normalize_advantages: standardise advantages over the batch's valid steps.
        value_clip: when set, clip the new value to ``old ± value_clip`` (pessimistic max).
        target_kl: when set, stop after an epoch whose approx KL exceeds 1.5 · target_kl.
    """

    lr: float = 3e-4
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    epochs: int = 4
    minibatch_episodes: int = 8
    gamma: float = 0.99
    lam: float = 0.95
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    value_clip: float | None = None
    target_kl: float | None = None
