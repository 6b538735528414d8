"""Policy heads of image tasks that read the current frame beside m_t (memup-spec E.10).

The frozen-memory policy of the paper reads m_t only; :class:`FrameHeads` adds a CNN of the
current frame, trained by PPO, and optionally phase I's frozen predictor's outcome for each
action. The learner asks any policy for ``reads_records`` (feed it the step records too),
``with_outcomes`` (a per-batch precomputation) and ``adopt_phase_one`` (start from phase
I's networks when phase II begins); :class:`rl.policy.PolicyHeads` has none of them.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from memup.predictor import QuestionPredictor
from rl.policy import FramePolicyInputs, PolicyHeads
from tasks.frames import FrameEncoder

log = logging.getLogger(__name__)

OUTCOME_GAIN_SCALE = 10.0
"""The outcome gain is ``10 · g``: Adam moves ``g`` by about ``lr`` per step whatever its
gradient, and a useful gain (a few logits per unit of predicted reward) would otherwise take
thousands of PPO minibatch steps to reach."""


class FrameHeads(nn.Module):
    """Policy and value heads on ``[m_t ; CNN(frame_t)]``: the frozen memory plus a CNN of
    the current frame trained by the PPO loss (memup-spec E.10, a deviation from the
    paper's m_t-only input: MemUP trains the memory to predict future rewards from target
    frames, so m_t need not say where the items in view are).

    With ``interaction=True`` the heads also read ``m_t ⊙ W·CNN(frame_t)``, the product the
    MemUP predictor reads (:class:`memup.predictor.QuestionPredictor`): in Two-Colors the
    right item is the XOR of the remembered colour and the colour in view, which a
    concat-only MLP must first discover. :meth:`adopt_encoder` starts the CNN (and ``W``)
    from a trained predictor's, so the heads begin with features that already tell the
    items apart.

    With an ``outcome_model`` (phase I's predictor, frozen: it and the frozen memory were
    trained together) the heads also read its prediction of each action's outcome,
    ``q(y | m_t, frame_t, a)`` for every ``a``, and add ``gain · prediction`` to the logits
    (``gain`` learned, starting at 0, see :data:`OUTCOME_GAIN_SCALE`): the predictor has
    already solved the colour XOR that a fresh policy would have to discover again from
    PPO's far noisier signal.
    """

    reads_records = True
    """The learner feeds these heads :class:`rl.policy.FramePolicyInputs` (m_t and records)."""

    def __init__(self, memory_dim: int, frame_shape: tuple[int, int, int], n_actions: int,
                 hidden: int = 256, cnn: str = "small", interaction: bool = False,
                 outcome_model: QuestionPredictor | None = None) -> None:
        super().__init__()
        self.encoder = FrameEncoder(frame_shape, n_actions, "input", cnn)
        self.embed_dim = self.encoder.embed[0].out_features
        self.question = nn.Linear(self.embed_dim, memory_dim) if interaction else None
        width = memory_dim * (2 if interaction else 1) + self.encoder.out_dim
        self.outcome_model = outcome_model
        self.outcome_gain = None
        if outcome_model is not None:
            outcome_model.requires_grad_(False)
            self.outcome_gain = nn.Parameter(torch.zeros(()))
            width += n_actions
        self.heads = PolicyHeads(width, n_actions, hidden=hidden)
        self.n_actions = n_actions

    def forward(self, features: torch.Tensor, records: torch.Tensor | None = None,
                outcomes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and value of ``[..., H]`` memory outputs and ``[..., W]`` records
        (``outcomes``: the outcome model's ``[..., A]`` predictions when already known)."""
        if records is None:
            raise ValueError("FrameHeads reads the step records as well as m_t")
        frame = self.encoder(records)
        parts = [features, frame]
        if self.question is not None:
            parts.append(features * self.question(frame[..., : self.embed_dim]))
        if self.outcome_model is None:
            return self.heads(torch.cat(parts, dim=-1))
        if outcomes is None:
            outcomes = self.predicted_outcomes(features, records)
        logits, values = self.heads(torch.cat([*parts, outcomes], dim=-1))
        return logits + self.outcome_weight * outcomes, values

    @property
    def outcome_weight(self) -> torch.Tensor | None:
        """The learned gain of the predicted outcomes in the logits (None without them)."""
        return None if self.outcome_gain is None else OUTCOME_GAIN_SCALE * self.outcome_gain

    @torch.no_grad()
    def predicted_outcomes(self, features: torch.Tensor, records: torch.Tensor) -> torch.Tensor:
        """``[..., A]``: the frozen outcome model's prediction for each action."""
        if self.outcome_model is None:
            raise ValueError("these heads were built without an outcome model")
        self.outcome_model.eval()
        return self.outcome_model.every_action(features, records)

    def with_outcomes(self, inputs: FramePolicyInputs, episodes: int = 8) -> FramePolicyInputs:
        """``inputs`` with the outcome model's predictions attached, computed ``episodes``
        at a time: the model is frozen, so PPO's epochs need not run its CNN over every
        frame again in each minibatch. Unchanged without an outcome model."""
        if self.outcome_model is None:
            return inputs
        outcomes = torch.cat([self.predicted_outcomes(f, r) for f, r in
                              zip(inputs.features.split(episodes), inputs.records.split(episodes))])
        return FramePolicyInputs(inputs.features, inputs.records, outcomes)

    @torch.no_grad()
    def adopt_encoder(self, source: FrameEncoder, question: nn.Linear | None = None) -> None:
        """Copies a trained frame CNN (the memory's or the predictor's) into this policy's,
        and, with ``interaction``, the frame columns of the predictor's question layer.

        Raises:
            ValueError: the CNN or the question layer has another shape.
        """
        if source.frame_shape != self.encoder.frame_shape or \
                source.embed[0].weight.shape != self.encoder.embed[0].weight.shape:
            raise ValueError(f"cannot start the policy CNN from a CNN of frames "
                             f"{source.frame_shape} → {source.embed[0].out_features}; this "
                             f"policy reads {self.encoder.frame_shape} → {self.embed_dim}")
        self.encoder.cnn.load_state_dict(source.cnn.state_dict())
        self.encoder.embed.load_state_dict(source.embed.state_dict())
        if self.question is not None and question is not None:
            if question.out_features != self.question.out_features or \
                    question.in_features < self.embed_dim:
                raise ValueError(f"question layer {question.in_features} → "
                                 f"{question.out_features} does not fit {self.embed_dim} → "
                                 f"{self.question.out_features}")
            # The predictor's query is [embedding ; action one-hot]; the policy's product
            # reads the embedding only.
            self.question.weight.copy_(question.weight[:, : self.embed_dim])
            self.question.bias.copy_(question.bias)

    def adopt_phase_one(self, memory: nn.Module, predictor: nn.Module, which: str) -> None:
        """Phase II begins: the outcome model becomes phase I's (EMA) predictor, the partner
        of the memory the policy reads, and ``which`` (``ppo.init_encoder``: "predictor",
        "memory" or "" for neither) CNN becomes this policy's starting CNN."""
        if self.outcome_model is not None:
            self.outcome_model.load_state_dict(predictor.state_dict())
            log.info("policy heads read phase I's predictor's outcome for each action")
        if not which:
            return
        if which == "predictor":
            self.adopt_encoder(predictor.query_encoder, predictor.question)  # type: ignore[arg-type]
        else:
            self.adopt_encoder(memory.encoder)  # type: ignore[arg-type]
        log.info("policy frame CNN starts from phase I's %s CNN", which)

    def forward_sequence(self, x: FramePolicyInputs,
                         mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Elementwise over ``[N, T]`` steps; ``mask`` is accepted for a uniform interface."""
        del mask
        return self(x.features, x.records, x.outcomes)


