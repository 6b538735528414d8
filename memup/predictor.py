"""The predictor q_φ(y_k | m_t, x_k): reads a memory state and the local features of step k."""

from __future__ import annotations

import torch
from torch import nn

from memup.memory import State, TokenEncoder


class QuestionPredictor(nn.Module):
    """T-Maze predictor: ``[m_t ; q_k (; m_t ⊙ q_k)] → hidden → ReLU → out``.

    ``q_k`` is the question embedding ``Linear(enc(query) → memory_dim)``, with ``enc`` the
    same kind of encoder the memory uses (Linear+ReLU on the observation, the action one-hot
    passed on). The paper's head sees ``[m_t ; q_k]`` only. With ``interaction=True`` it also
    sees the product ``m_t ⊙ q_k``: in T-Maze the reward is the XOR of the remembered clue and
    the final action, so neither alone correlates with it and a concat-only head starts on a
    saddle whose escape time grows with the corridor length; the product term gives the
    memory a first-order learning signal from the first update. ``dropout`` drops the head's
    inputs in train mode (0: none).
    """

    uses_context = False

    def __init__(
        self, memory_dim: int, query_encoder: nn.Module, hidden: int = 512, out_dim: int = 1,
        interaction: bool = False, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.query_encoder = query_encoder
        self.question = nn.Linear(query_encoder.out_dim, memory_dim)
        self.interaction = interaction
        width = memory_dim * (3 if interaction else 2)
        self.dropout = nn.Dropout(dropout)  # no parameters: checkpoints load whatever the rate
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        self.out_dim = out_dim

    def forward(
        self, memory: torch.Tensor, queries: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicts y_k for N (m_t, x_k) pairs: memory ``[N, H]``, queries ``[N, Dq]``."""
        return self._answer(memory, self.question(self.query_encoder(queries)))

    def every_action(self, memory: torch.Tensor, records: torch.Tensor) -> torch.Tensor:
        """Predicts y for each action at once: memory ``[..., H]``, image step records
        ``[..., W]`` → ``[..., A]`` (the frame is encoded once, then asked about each action).

        Phase II policies read this as "what each action would lead to, given the memory".

        Raises:
            TypeError: the query encoder does not read image step records.
        """
        every = getattr(self.query_encoder, "every_action", None)
        if every is None or self.out_dim != 1:
            raise TypeError("every_action needs a FrameEncoder query encoder and one output")
        question = self.question(every(records))  # [..., A, H]
        return self._answer(memory.unsqueeze(-2).expand_as(question), question)

    def _answer(self, memory: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        parts = [memory, question, memory * question] if self.interaction else [memory, question]
        out = self.head(self.dropout(torch.cat(parts, dim=-1)))
        return out.squeeze(-1) if self.out_dim == 1 else out


class ContextPredictor(nn.Module):
    """Copy predictor with its own local-context LSTM over the target-step inputs.

    ``[emb(x_k) ; m_t ; c_k] → 256 → ReLU → 256 → Dropout → ReLU → classes``, where c_k is
    the output of a 2-layer LSTM that has read the inputs up to step k. The context tells the
    head *where* it is (which recall position), the memory *what* to recall. Recalling the
    i-th stored symbol is a selection of memory by position; ``interaction=True`` adds the
    product ``m_t ⊙ W c_k`` to the head's input so that selection is one layer away.
    """

    uses_context = True

    def __init__(
        self, memory_dim: int, vocab: int, classes: int, dim: int = 128, layers: int = 2,
        dropout: float = 0.1, hidden: int = 256, interaction: bool = False,
    ) -> None:
        super().__init__()
        self.embed = TokenEncoder(vocab, dim)
        self.interaction = nn.Linear(dim, memory_dim) if interaction else None
        self.context_lstm = nn.LSTM(dim, dim, num_layers=layers, batch_first=True,
                                    dropout=dropout)
        self.context_layers = layers
        self.context_dim = dim
        self.head = nn.Sequential(
            nn.Linear(2 * dim + memory_dim * (2 if interaction else 1), hidden), nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.Dropout(dropout), nn.ReLU(), nn.Linear(hidden, classes),
        )
        self.out_dim = classes

    def initial_context_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """Zero state of the context LSTM."""
        zeros = torch.zeros(self.context_layers, batch, self.context_dim, device=device)
        return zeros, zeros.clone()

    def context(self, queries: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Runs the context LSTM over ``[B, T]`` tokens; returns ``[B, T, dim]`` and state."""
        return self.context_lstm(self.embed(queries), state)

    def forward(
        self, memory: torch.Tensor, queries: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits for N pairs: memory ``[N, H]``, queries ``[N]`` tokens, context ``[N, dim]``."""
        if context is None:
            raise ValueError("ContextPredictor needs the local context c_k of every target")
        parts = [self.embed(queries), memory, context]
        if self.interaction is not None:
            parts.append(memory * self.interaction(context))
        return self.head(torch.cat(parts, dim=-1))

