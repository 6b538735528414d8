"""What the resume tests compare: two runs' checkpoints hold the same trained networks."""

from __future__ import annotations

from pathlib import Path

import torch

from common.checkpoint import load_checkpoint


def assert_same_networks(first: Path, second: Path) -> dict:
    """Asserts the memory and predictor weights in two run directories' checkpoints are
    equal bit for bit; returns the first checkpoint's training state for further checks."""
    a = load_checkpoint(first / "checkpoint.pt")["training"]
    b = load_checkpoint(second / "checkpoint.pt")["training"]
    for name in ("memory", "predictor"):
        for key, tensor in a[name].items():
            assert torch.equal(tensor, b[name][key]), f"{name}.{key} differs after resume"
    return a
