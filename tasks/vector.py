"""Networks of vector-observation tasks: ``[o_t, onehot(a_{t-1}), r_{t-1}]`` → LSTM.

The step encoding itself is :mod:`memup.encoding`; T-Maze and the gym task's Box and
one-hot observations build their memory and predictor here.
"""

from __future__ import annotations

from memup.memory import Memory, VectorEncoder
from memup.networks import TaskNets
from memup.predictor import QuestionPredictor


def vector_nets(obs_dim: int, n_actions: int, hidden: int = 256,
                chrono_horizon: int | None = None, interaction: bool = False,
                predictor_hidden: int = 512) -> TaskNets:
    """obs→64 ReLU ⊕ prev_action(A) ⊕ prev_reward(1) → LSTM; a question predictor asked
    about ``[obs, onehot(a)]`` → reward.

    Args:
        obs_dim: width of one (flattened) observation.
        n_actions: size of the discrete action space.
        hidden: memory width.
        chrono_horizon: chrono initialisation of the LSTM's forget gate (None: off).
        interaction: the predictor also reads ``m_t ⊙ q_k``.
        predictor_hidden: width of the predictor's hidden layer.
    """
    memory = Memory(VectorEncoder(obs_dim, n_actions + 1), hidden, chrono_horizon=chrono_horizon)
    predictor = QuestionPredictor(hidden, VectorEncoder(obs_dim, n_actions),
                                  hidden=predictor_hidden, interaction=interaction)
    return TaskNets(memory, predictor, "regression")
