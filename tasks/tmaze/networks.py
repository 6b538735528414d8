"""The T-Maze memory and predictor (memup-spec A), at the paper's sizes."""

from __future__ import annotations

from memup.networks import TaskNets
from tasks.vector import vector_nets


def tmaze_nets(hidden: int = 256, chrono_horizon: int | None = None,
               interaction: bool = False) -> TaskNets:
    """T-Maze: obs→64 ReLU ⊕ prev_action(2) ⊕ prev_reward(1) → LSTM; question predictor.

    Inputs are ``[obs(3), onehot(prev_a)(2), prev_r(1)]``, queries ``[obs(3), onehot(a)(2)]``.
    """
    return vector_nets(3, 2, hidden, chrono_horizon=chrono_horizon, interaction=interaction,
                       predictor_hidden=512)
