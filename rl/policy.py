"""Policy and value heads for Phase II PPO, the PPO-LSTM baseline, and the joint-mode soft update.

Phase II of the two-phase protocol trains PPO on a frozen MemUP memory: m_t is the only input
of :class:`PolicyHeads`. The baseline :class:`LstmPolicy` instead learns its own memory end to
end from the PPO loss, with truncated BPTT. Both expose the same
``forward_sequence(x [N, T, D], mask [N, T]) -> (logits [N, T, A], values [N, T])`` that
:class:`rl.ppo.PPOTrainer` trains.

A task's own heads may offer more, and the learner asks for each by name: ``reads_records``
(feed :class:`FramePolicyInputs`, m_t and the step records), ``with_outcomes(inputs)`` (a
per-batch precomputation), ``adopt_phase_one(memory, predictor, which)`` (phase II starts
from phase I's networks) and ``outcome_weight`` (logged); see
:class:`tasks.frame_heads.FrameHeads`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from memup.memory import State, zero_state


def orthogonal_linear(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    """A Linear layer with orthogonal weights of ``gain`` and zero bias (the PPO convention)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, hidden: int, depth: int, out_dim: int, out_gain: float) -> nn.Sequential:
    """``depth`` Linear layers ``in → hidden → … → hidden → out`` with ReLUs in between."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth - 1):
        layers += [orthogonal_linear(width, hidden, math.sqrt(2.0)), nn.ReLU()]
        width = hidden
    layers.append(orthogonal_linear(width, out_dim, out_gain))
    return nn.Sequential(*layers)


class PolicyHeads(nn.Module):
    """Separate policy and value MLPs over the same features (m_t of a frozen memory).

    ``depth`` counts the Linear layers of each MLP, so the defaults give the paper's
    ``in → 256 → 256 → |A|`` policy and ``in → 256 → 256 → 1`` value networks (two ReLU
    hidden layers of width ``hidden``). The small policy-output gain starts the policy
    near uniform; separate networks keep value-loss gradients out of the policy.
    """

    def __init__(self, in_dim: int, n_actions: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.n_actions = n_actions
        self.policy = mlp(in_dim, hidden, depth, n_actions, out_gain=0.01)
        self.value = mlp(in_dim, hidden, depth, 1, out_gain=1.0)

    def forward(self, features: torch.Tensor, records: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[..., A]`` and value ``[...]`` of ``[..., in_dim]`` features.

        ``records`` (the step inputs) are accepted for a uniform interface and unused.
        """
        del records
        return self.policy(features), self.value(features).squeeze(-1)

    @torch.no_grad()
    def set_action_prior(self, weights: Sequence[float]) -> None:
        """Starts the policy at the distribution of relative ``weights`` instead of uniform:
        the output bias becomes their log-probabilities (the output weights are near zero).
        PPO then explores as that distribution does, e.g. phase I's data policy walking
        forward, and is free to move the bias away.

        Raises:
            ValueError: not one non-negative weight per action, or all zero.
        """
        w = torch.tensor([float(x) for x in weights], dtype=torch.float32)
        if w.numel() != self.n_actions or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"need {self.n_actions} non-negative weights, one per action, "
                             f"not all zero; got {list(weights)}")
        # A zero weight becomes a very unlikely action, not an impossible one: log(0) = -inf
        # would make its gradient NaN.
        self.policy[-1].bias.copy_(torch.log((w / w.sum()).clamp_min(1e-4)))

    def forward_sequence(self, x: torch.Tensor,
                         mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Elementwise over ``[N, T, in_dim]``; ``mask`` is accepted for a uniform interface."""
        del mask  # Every step is independent; padded outputs are masked by the loss.
        return self(x)


@dataclass
class FramePolicyInputs:
    """What heads with ``reads_records`` (e.g. :class:`tasks.frame_heads.FrameHeads`) read
    per step: m_t and the step's record."""

    features: torch.Tensor  #: ``[N, T, H]`` frozen memory output
    records: torch.Tensor  #: ``[N, T, W]`` uint8 step records (:mod:`tasks.frames`)
    #: ``[N, T, A]`` the frozen outcome model's predictions, computed once per batch by
    #: :meth:`FrameHeads.with_outcomes` (None: computed in every forward pass)
    outcomes: torch.Tensor | None = None

    def __getitem__(self, index: torch.Tensor) -> FramePolicyInputs:
        return FramePolicyInputs(self.features[index], self.records[index],
                                 None if self.outcomes is None else self.outcomes[index])

    def to(self, device: torch.device | str) -> FramePolicyInputs:
        return FramePolicyInputs(self.features.to(device), self.records.to(device),
                                 None if self.outcomes is None else self.outcomes.to(device))


class LstmPolicy(nn.Module):
    """The PPO-LSTM baseline: ``Linear(→embed)+ReLU → LSTM → policy and value MLPs``.

    Trained end to end by the PPO loss; :meth:`forward_sequence` truncates backpropagation
    through time to ``tbptt`` steps.

    Args:
        in_dim: flattened observation size.
        n_actions: number of discrete actions.
        embed: width of the input embedding.
        hidden: LSTM hidden size, also the width of the heads' hidden layers.
        layers: LSTM layers.
        dropout: dropout between LSTM layers (active in train mode only).
        tbptt: length of the chunks gradients flow through.
        encoder: reads the inputs instead of the Linear embedding (e.g. a CNN on frames);
            ``in_dim`` is then its output width.
    """

    def __init__(self, in_dim: int, n_actions: int, embed: int = 64, hidden: int = 128,
                 layers: int = 2, dropout: float = 0.1, tbptt: int = 10,
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        if tbptt < 1:
            raise ValueError(f"tbptt must be at least 1, got {tbptt}")
        self.in_dim = in_dim
        self.n_actions = n_actions
        self.hidden = hidden
        self.layers = layers
        self.tbptt = tbptt
        if encoder is None:
            encoder = nn.Sequential(orthogonal_linear(in_dim, embed, math.sqrt(2.0)), nn.ReLU())
        else:
            embed = in_dim
        self.embed = encoder
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.heads = PolicyHeads(hidden, n_actions, hidden=hidden, depth=3)

    @property
    def out_dim(self) -> int:
        """Width of the memory features the heads read."""
        return self.hidden

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """Zero (h, c) for ``batch`` sequences, each ``[layers, batch, hidden]``."""
        return zero_state(self.lstm, batch, device)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One actor step: ``[B, in_dim]`` inputs → logits ``[B, A]``, value ``[B]``, new state."""
        out, state = self.lstm(self.embed(x).unsqueeze(1), state)
        logits, value = self.heads(out.squeeze(1))
        return logits, value, state

    def forward_sequence(self, x: torch.Tensor,
                         mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs ``[N, T, in_dim]`` from the zero state in ``tbptt`` chunks, detaching between.

        Padding follows the valid steps of each row, so whatever the LSTM does on padded
        steps never reaches a valid output; ``mask`` is accepted for a uniform interface.
        """
        del mask
        n, steps = x.shape[:2]
        state = self.initial_state(n, x.device)
        embedded = self.embed(x)
        outputs = []
        for start in range(0, steps, self.tbptt):
            out, state = self.lstm(embedded[:, start:start + self.tbptt], state)
            outputs.append(out)
            # Truncated BPTT: the next chunk sees this state as a constant.
            state = (state[0].detach(), state[1].detach())
        return self.heads(torch.cat(outputs, dim=1))


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, keep: float = 0.9) -> None:
    """``target ← keep · target + (1 − keep) · source`` in place, parameters and buffers.

    Joint mode moves the policy's copy of the memory towards the MemUP memory this way.
    Integer buffers (counters) cannot be blended and are copied from ``source``.
    """
    pairs = [*zip(target.parameters(), source.parameters(), strict=True),
             *zip(target.buffers(), source.buffers(), strict=True)]
    for t, s in pairs:
        s = s.detach().to(t.device)
        if t.is_floating_point():
            t.mul_(keep).add_(s, alpha=1.0 - keep)
        else:
            t.copy_(s)
