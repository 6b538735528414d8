"""The recurrent memory g_θ: an input encoder feeding an LSTM, with done-masking."""

from __future__ import annotations

import itertools

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


class VectorEncoder(nn.Module):
    """Encodes ``[features(obs_dim), extras...]``: Linear+ReLU on the features, extras passed on.

    T-Maze feeds ``[obs(3), onehot(prev_action)(2), prev_reward(1)]``: the observation is
    embedded, the previous action and reward are concatenated as they are.
    """

    def __init__(self, obs_dim: int, extra_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.linear = nn.Linear(obs_dim, hidden)
        self.out_dim = hidden + extra_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = torch.relu(self.linear(x[..., : self.obs_dim]))
        return torch.cat([encoded, x[..., self.obs_dim :]], dim=-1)


class TokenEncoder(nn.Module):
    """Embeds integer tokens (Copy-task symbols)."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x.long())


def chrono_init(lstm: nn.LSTM, max_horizon: int) -> None:
    """Chrono initialisation (Tallec & Ollivier, 2018) of the gate biases.

    Forget-gate bias ``log(U[1, max_horizon-1])`` and input-gate bias its negative, so that
    the cell's initial time constants spread up to ``max_horizon`` steps. Long dependencies
    then no longer have to be discovered from a forget gate that forgets in a few steps.
    """
    hidden = lstm.hidden_size
    for layer in range(lstm.num_layers):
        b_ih = getattr(lstm, f"bias_ih_l{layer}")
        b_hh = getattr(lstm, f"bias_hh_l{layer}")
        with torch.no_grad():
            horizon = torch.empty(hidden).uniform_(1.0, max(2.0, max_horizon - 1.0))
            forget = torch.log(horizon)
            b_ih.zero_()
            b_hh.zero_()
            # PyTorch gate order: input, forget, cell, output.
            b_ih[hidden : 2 * hidden] = forget
            b_ih[:hidden] = -forget


class Memory(nn.Module):
    """m_t = g_θ(m_{t-1}, x_t): an encoder and a batch-first LSTM; m_t is the top-layer h_t.

    Args:
        encoder: module mapping ``[B, T, ...]`` inputs to ``[B, T, encoder.out_dim]``.
        hidden: LSTM hidden size.
        layers: LSTM layers.
        dropout: dropout between LSTM layers.
        chrono_horizon: when set, chrono-initialise the gate biases for this horizon.
    """

    def __init__(
        self,
        encoder: nn.Module,
        hidden: int,
        layers: int = 1,
        dropout: float = 0.0,
        chrono_horizon: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.hidden = hidden
        self.layers = layers
        self.lstm = nn.LSTM(
            encoder.out_dim, hidden, num_layers=layers, batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        if chrono_horizon:
            chrono_init(self.lstm, chrono_horizon)

    @property
    def out_dim(self) -> int:
        return self.hidden

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """Zero (h, c) for ``batch`` sequences, each ``[layers, batch, hidden]``."""
        return zero_state(self.lstm, batch, device)

    def forward(
        self, inputs: torch.Tensor, state: State, resets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Runs the memory over ``[B, T, ...]`` inputs from ``state``.

        Args:
            inputs: ``[B, T, ...]`` step inputs.
            state: (h, c), each ``[layers, B, hidden]``.
            resets: optional ``[B, T]`` bool; ``resets[b, t]`` zeroes lane b's state right
                before step t (a new episode starts there).

        Returns:
            outputs ``[B, T, hidden]`` and the state after the last step.
        """
        x = self.encoder(inputs)
        if resets is None or not bool(resets.any()):
            return self.lstm(x, state)
        # Split time at every step where some lane resets; each span is one fused LSTM call.
        reset_steps = torch.nonzero(resets.any(dim=0)).flatten().tolist()
        bounds = sorted({0, *reset_steps, x.shape[1]})
        h, c = state
        outputs = []
        for start, end in itertools.pairwise(bounds):
            keep = (~resets[:, start]).to(x.dtype).view(1, -1, 1)
            h, c = h * keep, c * keep
            out, (h, c) = self.lstm(x[:, start:end], (h, c))
            outputs.append(out)
        return torch.cat(outputs, dim=1), (h, c)


def zero_state(lstm: nn.LSTM, batch: int, device: torch.device | str = "cpu") -> State:
    """Zero (h, c) of ``lstm`` for ``batch`` sequences, each ``[layers, batch, hidden]``."""
    zeros = torch.zeros(lstm.num_layers, batch, lstm.hidden_size, device=device)
    return zeros, zeros.clone()


def mask_state(state: State, keep: torch.Tensor) -> State:
    """Zeroes the state of lanes where ``keep`` ``[B]`` is False."""
    k = keep.to(state[0].dtype).view(1, -1, 1)
    return state[0] * k, state[1] * k


def detach_state(state: State) -> State:
    """Cuts the gradient path into the past (TBPTT)."""
    return state[0].detach(), state[1].detach()
