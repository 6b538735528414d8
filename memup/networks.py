"""The memory + predictor pairs of each task, with the paper's sizes as defaults."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memup.frames import FrameEncoder
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
        """Thumbnail loss of the memory's frame encoder on ``count`` of the ``inputs`` plus
        the predictor's on ``count`` of the ``queries`` (those built with a decoder).

        Raises:
            ValueError: neither network has a frame encoder with a decoder.
        """
        pairs = ((self.memory.encoder, inputs),
                 (getattr(self.predictor, "query_encoder", None), queries))
        losses = [encoder.reconstruction_loss(records, count) for encoder, records in pairs
                  if isinstance(encoder, FrameEncoder) and encoder.decoder is not None]
        if not losses:
            raise ValueError("no frame encoder of these networks reconstructs: build them "
                             "with reconstruct=True")
        return torch.stack(losses).sum()


def tmaze_nets(hidden: int = 256, chrono_horizon: int | None = None,
               interaction: bool = False) -> TaskNets:
    """T-Maze: obs→64 ReLU ⊕ prev_action(2) ⊕ prev_reward(1) → LSTM; question predictor.

    Inputs are ``[obs(3), onehot(prev_a)(2), prev_r(1)]``, queries ``[obs(3), onehot(a)(2)]``.
    """
    memory = Memory(VectorEncoder(3, 3), hidden, chrono_horizon=chrono_horizon)
    predictor = QuestionPredictor(hidden, VectorEncoder(3, 2), hidden=512,
                                  interaction=interaction)
    return TaskNets(memory, predictor, "regression")


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


def two_colors_nets(hidden: int = 128, frame_shape: tuple[int, int, int] = (3, 64, 112),
                    n_actions: int = 8, cnn: str = "small", chrono_horizon: int | None = None,
                    interaction: bool = True, reconstruct: bool = False, query_shift: int = 0,
                    predictor_dropout: float = 0.0) -> TaskNets:
    """Two-Colors: CNN(frame) ⊕ prev_action ⊕ prev_reward → LSTM; predictor on the target
    frame's own CNN embedding and action → reward (memup-spec E.9, sizes per ``cnn``).

    The predictor has a CNN of its own (not the memory's, detached): the pickup's colour
    must be read off the target frame whatever the memory's encoder learns to keep.
    ``reconstruct`` gives both CNNs a thumbnail decoder (:meth:`TaskNets.reconstruction_loss`);
    ``query_shift`` and ``predictor_dropout`` regularise the predictor in train mode (its
    target frames moved by up to that many pixels; its head's inputs dropped at that rate).
    """
    memory = Memory(FrameEncoder(frame_shape, n_actions, "input", cnn, reconstruct), hidden,
                    chrono_horizon=chrono_horizon)
    predictor = two_colors_predictor(hidden, frame_shape, n_actions, cnn, interaction,
                                     reconstruct, query_shift, predictor_dropout)
    return TaskNets(memory, predictor, "regression")


def two_colors_predictor(hidden: int, frame_shape: tuple[int, int, int], n_actions: int,
                         cnn: str, interaction: bool, reconstruct: bool, query_shift: int = 0,
                         dropout: float = 0.0) -> QuestionPredictor:
    """The predictor of :func:`two_colors_nets` alone: m_t of width ``hidden`` and the
    target frame's own CNN embedding and action → reward."""
    return QuestionPredictor(
        hidden, FrameEncoder(frame_shape, n_actions, "query", cnn, reconstruct, query_shift),
        hidden=256, interaction=interaction, dropout=dropout)
