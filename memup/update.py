"""One MemUP update: memory over the rollout, predictor on (m_t, x_k) pairs, Adam, EMA, detach."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from memup.batch import Batch
from memup.config import UpdateConfig
from memup.detector import SurpriseDetector
from memup.losses import is_correct, outcome_sign_hits, pointwise_loss
from memup.memory import detach_state, mask_state
from memup.networks import TaskNets
from memup.saved import count_saved_bytes


class Updater:
    """Holds the optimiser and the lanes' carried state; :meth:`step` trains on one batch."""

    def __init__(self, nets: TaskNets, config: UpdateConfig, lanes: int,
                 detector: SurpriseDetector | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.nets = nets
        self.config = config
        self.detector = detector
        self.device = device
        params: list[torch.nn.Parameter] = []
        if config.train_memory:
            params += list(nets.memory.parameters())
        if config.train_predictor:
            params += list(nets.predictor.parameters())
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.state = nets.memory.initial_state(lanes, device)
        self.context_state = (nets.predictor.initial_context_state(lanes, device)
                              if config.live_context else None)
        self.updates = 0

    def step(self, batch: Batch) -> dict[str, float]:
        """Trains on one batch; returns loss, accuracy, pairs, steps (regression: the pairs
        whose outcome is nonzero and the share of them whose sign is right; saved bytes)."""
        cfg, memory, predictor = self.config, self.nets.memory, self.nets.predictor
        batch = batch.to(self.device)
        keep = ~batch.fresh
        memory.train(cfg.train_memory)
        predictor.train(cfg.train_predictor)
        measure = (count_saved_bytes(self.params) if cfg.measure_saved else nullcontext())
        with measure as saved:
            with torch.set_grad_enabled(cfg.train_memory):
                out, state = memory(batch.inputs, mask_state(self.state, keep))
            m = out[batch.pair_lane, batch.pair_step]
            context = batch.pair_context
            if cfg.live_context:
                ctx, self.context_state = predictor.context(
                    batch.queries, mask_state(self.context_state, keep))
                context = _mix_context(ctx, batch)
                self.context_state = detach_state(self.context_state)
            pred = predictor(m, batch.pair_queries, context)
            losses = pointwise_loss(pred, batch.pair_labels, self.nets.kind)
            loss = losses.mean()
            total = loss
            if cfg.reconstruction > 0:
                reconstruction = self.nets.reconstruction_loss(
                    batch.inputs, batch.pair_queries, cfg.reconstruction_frames)
                total = loss + cfg.reconstruction * reconstruction
            # A NaN or infinite loss (e.g. a diverged predictor) takes no optimiser step, so
            # one bad batch cannot poison the weights; the update is still counted.
            stepped = math.isfinite(loss.item())
            if stepped:
                memory.zero_grad(set_to_none=True)
                predictor.zero_grad(set_to_none=True)
                (total * cfg.loss_scale).backward()
        if stepped:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.clip)
            self.optimizer.step()
            if cfg.ema and self.detector is not None:
                self.detector.update(memory, predictor)
        self.state = detach_state(state)
        self.updates += 1
        stats = {
            "loss": loss.item(),
            "accuracy": is_correct(pred.detach(), batch.pair_labels, self.nets.kind)
            .float().mean().item(),
            "pairs": float(len(losses)),
            "steps": float(batch.steps),
        }
        if self.nets.kind == "regression":
            hits, outcomes = outcome_sign_hits(pred.detach(), batch.pair_labels)
            stats["outcome_pairs"] = float(outcomes)
            if outcomes:
                stats["outcome_sign_accuracy"] = hits / outcomes
        if cfg.reconstruction > 0:
            stats["reconstruction_loss"] = reconstruction.item()
        if saved is not None:
            stats["saved_bytes"] = float(saved.activations)
            stats["saved_parameter_bytes"] = float(saved.parameters)
        return stats

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "state": [t.cpu() for t in self.state],
            "context_state": None if self.context_state is None
            else [t.cpu() for t in self.context_state],
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.state = tuple(t.to(self.device) for t in state["state"])  # type: ignore[assignment]
        if state["context_state"] is not None:
            self.context_state = tuple(t.to(self.device) for t in state["context_state"])
        self.updates = int(state["updates"])


def _mix_context(live: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Live context for targets inside the slice, the stored one for targets beyond it."""
    inside = batch.pair_local >= 0
    picked = live[batch.pair_lane, batch.pair_local.clamp(min=0)]
    if bool(inside.all()):
        return picked
    if batch.pair_context is None:
        raise ValueError("targets beyond the slice need a stored context: mark the episodes "
                         "with TargetRule(context=True)")
    return torch.where(inside[:, None], picked, batch.pair_context.to(picked.dtype))
