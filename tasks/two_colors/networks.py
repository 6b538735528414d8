"""The Two-Colors memory and predictor (memup-spec E.9): the image networks at its frame size."""

from __future__ import annotations

from memup.networks import TaskNets
from memup.predictor import QuestionPredictor
from tasks.frames import frame_nets, frame_predictor


def two_colors_nets(hidden: int = 128, frame_shape: tuple[int, int, int] = (3, 64, 112),
                    n_actions: int = 8, cnn: str = "small", chrono_horizon: int | None = None,
                    interaction: bool = True, reconstruct: bool = False, query_shift: int = 0,
                    predictor_dropout: float = 0.0) -> TaskNets:
    """Two-Colors: :func:`tasks.frames.frame_nets` with the paper's defaults."""
    return frame_nets(hidden, frame_shape, n_actions, cnn, chrono_horizon, interaction,
                      reconstruct, query_shift, predictor_dropout)


def two_colors_predictor(hidden: int, frame_shape: tuple[int, int, int], n_actions: int,
                         cnn: str, interaction: bool, reconstruct: bool, query_shift: int = 0,
                         dropout: float = 0.0) -> QuestionPredictor:
    """The predictor of :func:`two_colors_nets` alone."""
    return frame_predictor(hidden, frame_shape, n_actions, cnn, interaction, reconstruct,
                           query_shift, dropout)
