"""The MemUP algorithm's settings and their defaults (no torch: configs and CLIs import it).

These dataclasses are the one source of every MemUP default: ``common.config``'s ``[memup]``
section and the ``memup train`` flags take theirs from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UpdateConfig:
    """What one update trains and how.

    Attributes:
        lr: Adam learning rate (T-Maze phase I's; ``memup up`` and ``memup train`` use it).
        ema_decay: detector EMA decay per optimiser step (with ``ema``).
        clip: global gradient-norm clip of the trained parameters.
        loss_scale: multiplier of the loss (Copy memory phase: 0.1).
        train_memory: the memory gets gradients and steps (else it runs frozen, no grad).
        train_predictor: the predictor steps.
        live_context: the predictor's context LSTM runs over the slice with carried state
            and gives the context of targets inside the slice (so it trains); targets
            beyond the slice use the context stored on the episode by the mark.
        ema: update the detector after every optimiser step.
        measure_saved: count the bytes stored for backward in every update (activations;
            parameter storages autograd also keeps are reported apart).
        reconstruction: weight of the frame encoders' thumbnail loss added to the loss
            (0: off; the networks must be built with decoders).
        reconstruction_frames: frames of the inputs, and as many of the target queries,
            each update reconstructs.
    """

    lr: float = 5e-3
    ema_decay: float = 0.995
    clip: float = 1.0
    loss_scale: float = 1.0
    train_memory: bool = True
    train_predictor: bool = True
    live_context: bool = False
    ema: bool = True
    measure_saved: bool = False
    reconstruction: float = 0.0
    reconstruction_frames: int = 64


@dataclass(frozen=True)
class WalkConfig:
    """How lanes walk episodes.

    Attributes:
        lanes: B, lanes walking side by side.
        rollout: r, steps per update (the TBPTT window).
        frequency: f, every f-th step of a rollout (and its last) predicts.
        skip: mean steps a lane passes without gradient after each rollout, its memory
            carried by a no-gradient pass (a multiple of r; 0: every step is trained on).
            Each episode's first and last rollouts are always trained; with episodes far
            longer than r this makes the rollouts that hold a long dependency's two ends
            (skip + r) / r times as frequent for a no-gradient pass of the steps between.
        reuse: lanes each marked episode is walked by (the detector's pass per episode is
            the larger cost once lanes skip through very long episodes).
    """

    lanes: int = 64
    rollout: int = 20
    frequency: int = 1
    skip: int = 0
    reuse: int = 1


@dataclass(frozen=True)
class AlternatingSchedule:
    """The Copy protocol's phase lengths, EMA cadence and learning rate (memup-spec A.10b,
    C.4).

    Attributes:
        warmup: predictor-phase updates before the first memory update.
        memory_updates: memory-phase updates per cycle.
        predictor_updates: predictor-phase updates per cycle.
        ema_decay: EMA decay applied once at the start of every cycle.
        memory_loss_scale: multiplier of the memory-phase loss.
        top_k: memory-phase targets per state.
        memory_frequency: memory-phase prediction frequency.
        lr: Adam learning rate of both phases' optimisers.
    """

    warmup: int = 1000
    memory_updates: int = 1000
    predictor_updates: int = 1000
    ema_decay: float = 0.97
    memory_loss_scale: float = 0.1
    top_k: int = 10
    memory_frequency: int = 10
    lr: float = 2e-4
