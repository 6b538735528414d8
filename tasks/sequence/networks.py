"""The memory + predictor pairs of the sequence tasks (Copy, Scattered Copy, Add), at the
MemUP paper's sizes."""

from __future__ import annotations

from memup.memory import Memory, TokenEncoder, VectorEncoder
from memup.networks import TaskNets
from memup.predictor import ContextPredictor, QuestionPredictor


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
