"""A memory + predictor pair (:class:`TaskNets`), and those of the sequence tasks with the
paper's sizes. RL tasks build theirs in ``tasks/``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memup.losses import Kind
from memup.memory import Memory, TokenEncoder, VectorEncoder
from memup.predictor import ContextPredictor, QuestionPredictor


@dataclass
class TaskNets:
    """A memory, its predictor and the kind of outcome they model."""

    memory: Memory
    predictor: nn.Module
    kind: Kind

    def reconstruction_loss(self, inputs: torch.Tensor, queries: torch.Tensor,
                            count: int) -> torch.Tensor:
        """Reconstruction loss of the memory's input encoder on ``count`` of the ``inputs``
        plus the predictor's query encoder's on ``count`` of the ``queries``: each encoder
        that has a ``decoder`` (not None) and a ``reconstruction_loss(rows, count)`` method
        (an image task's frame encoder built to reconstruct) adds its own.

        Raises:
            ValueError: neither network has an encoder with a decoder.
        """
        pairs = ((self.memory.encoder, inputs),
                 (getattr(self.predictor, "query_encoder", None), queries))
        losses = [encoder.reconstruction_loss(records, count) for encoder, records in pairs
                  if getattr(encoder, "decoder", None) is not None
                  and hasattr(encoder, "reconstruction_loss")]
        if not losses:
            raise ValueError("no encoder of these networks reconstructs: build them "
                             "with reconstruct=True")
        return torch.stack(losses).sum()


def copy_nets(hidden: int = 128, vocab: int = 20, classes: int = 10,
              chrono_horizon: int | None = None, interaction: bool = False) -> TaskNets:
    """Copy: Embedding(20,128) → LSTM 2×128 (dropout 0.1); predictor with context LSTM."""
    memory = Memory(TokenEncoder(vocab, 128), hidden, layers=2, dropout=0.1,
                    chrono_horizon=chrono_horizon)
    predictor = ContextPredictor(hidden, vocab, classes, interaction=interaction)
    return TaskNets(memory, predictor, "classification")


def add_nets(hidden: int = 128, chrono_horizon: int | None = None,
             interaction: bool = False) -> TaskNets:
    """Add: ``[value, mark, is_last]`` → Linear+ReLU → LSTM; question predictor → sum.

    The predictor is a regression head (one output, squared error): asked about the last
    step, it answers the sum of the two marked values; about any other step, 0.
    """
    memory = Memory(VectorEncoder(3, 0), hidden, chrono_horizon=chrono_horizon)
    predictor = QuestionPredictor(hidden, VectorEncoder(3, 0), hidden=256,
                                  interaction=interaction)
    return TaskNets(memory, predictor, "regression")
