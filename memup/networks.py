"""A memory + predictor pair (:class:`TaskNets`). Tasks build theirs in ``tasks/``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memup.losses import Kind
from memup.memory import Memory


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

