"""The sequence tasks' networks (tasks/sequence/networks.py): same parameters at the same seed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
import torch

from memup.networks import TaskNets
from tasks.sequence.networks import add_nets, copy_nets


def digest(build: Callable[[], TaskNets]) -> str:
    """sha256 over the names, dtypes, shapes and values of the memory's and the predictor's
    state_dicts, built after ``torch.manual_seed(0)``."""
    torch.manual_seed(0)
    nets = build()
    h = hashlib.sha256()
    for part, module in (("memory", nets.memory), ("predictor", nets.predictor)):
        for name, tensor in module.state_dict().items():
            h.update(f"{part}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# Computed with memup/networks.py before the move to tasks/sequence/networks.py: a checkpoint
# keeps loading, and a run keeps starting from the same weights.
PINNED = [
    (copy_nets, {}, "7f18594921a95692e02c4ccf208b73feaa1e8367ae8a15da274141b2d9941f91"),
    (copy_nets, {"chrono_horizon": 120, "interaction": True},
     "fc970910c3b28ede7196aa81b1ded59415f0bb7f318ef78cfa776d956909c16b"),
    (add_nets, {}, "5c571a73b562994b3f3c2fc2a38b0bd59fe1b23b67e835114e478d7c61e47a6a"),
    (add_nets, {"chrono_horizon": 1000, "interaction": True},
     "f95f58f5bf97ca9c3b9c178598e41572fb8f7b876d376de3e6df6ea7269cfc16"),
]


@pytest.mark.parametrize(("build", "kwargs", "expected"), PINNED,
                         ids=["copy", "copy-chrono-interaction", "add", "add-chrono-interaction"])
def test_same_seed_same_initial_parameters(build, kwargs: dict, expected: str) -> None:
    assert digest(lambda: build(**kwargs)) == expected
