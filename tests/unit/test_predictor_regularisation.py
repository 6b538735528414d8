"""Tests for what keeps the image predictor from fitting its replay's frames: moved target
frames, dropout on its head, and the batches' pickup-sign measure that watches it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.config import load_config
from memup.detector import TargetRule, mark_episodes
from memup.losses import outcome_sign_hits
from memup.sampler import LaneSampler
from memup.update import UpdateConfig, Updater
from tasks.frames import FrameEncoder, encode_frame_steps, random_shift
from tasks.registry import task_for
from tasks.two_colors.networks import two_colors_nets
from tests.unit.test_reconstruction import SHAPE, block_frames, frame_episodes


def memory_nets(config):  # type: ignore[no-untyped-def]
    return task_for(config).networks(config)

torch.set_num_threads(1)


def test_each_frame_is_a_crop_of_its_edge_padded_self_within_the_shift() -> None:
    torch.manual_seed(0)
    frames = torch.rand(16, 3, 10, 14)
    pad = 3
    padded = nn.functional.pad(frames, (pad,) * 4, mode="replicate")
    moved = random_shift(frames, pad)
    assert moved.shape == frames.shape
    offsets = set()
    for frame, source in zip(moved, padded):
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(frame, source[:, dy:dy + 10, dx:dx + 14])]
        assert found, "a moved frame is not a crop of its own padded frame"
        offsets.add(found[0])
    assert len(offsets) > 1  # each frame draws its own offset
    assert random_shift(frames, 0) is frames


def records(n: int) -> torch.Tensor:
    inputs, _, _ = encode_frame_steps(block_frames(n), np.zeros(n, np.int64),
                                      np.zeros(n, np.float32))
    return torch.from_numpy(inputs)


def test_frames_move_in_train_mode_only() -> None:
    torch.manual_seed(0)
    encoder = FrameEncoder(SHAPE, 8, "query", shift=4)
    batch = records(8)
    encoder.eval()
    assert torch.equal(encoder(batch), encoder(batch))
    encoder.train()
    assert not torch.equal(encoder(batch), encoder(batch))
    still = FrameEncoder(SHAPE, 8, "query")
    still.train()
    assert torch.equal(still(batch), still(batch))


def test_dropout_acts_in_train_mode_and_leaves_the_checkpoint_names_alone() -> None:
    torch.manual_seed(0)
    nets = two_colors_nets(hidden=16, query_shift=4, predictor_dropout=0.5)
    plain = two_colors_nets(hidden=16)
    assert nets.predictor.state_dict().keys() == plain.predictor.state_dict().keys()
    plain.predictor.load_state_dict(nets.predictor.state_dict())  # strict
    memory, queries = torch.randn(8, 16), records(8)
    nets.predictor.eval()
    plain.predictor.eval()
    assert torch.equal(nets.predictor(memory, queries), plain.predictor(memory, queries))
    nets.predictor.train()
    assert not torch.equal(nets.predictor(memory, queries), nets.predictor(memory, queries))


def test_config_sets_the_shift_and_the_dropout() -> None:
    config = load_config("configs/up_two_colors.toml",
                         overrides=["memup.query_shift=4", "memup.predictor_dropout=0.2"])
    predictor = memory_nets(config).predictor
    assert predictor.query_encoder.shift == 4 and predictor.dropout.p == 0.2
    # The memory's own CNN reads its frames as they are.
    assert memory_nets(config).memory.encoder.shift == 0


def test_outcome_sign_counts_only_nonzero_outcomes() -> None:
    prediction = torch.tensor([0.1, -0.2, 0.9, -0.7, 0.4, 0.0])
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0, -1.0, 2.0])
    assert outcome_sign_hits(prediction, labels) == (1, 4)
    assert outcome_sign_hits(prediction, torch.zeros(6)) == (0, 0)


def test_updates_report_the_pickup_sign_of_their_batch() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sampler = LaneSampler(frame_episodes, lambda eps: mark_episodes(eps, TargetRule(0, True),
                                                                     rng), 2, 6)
    nets = two_colors_nets(hidden=16, query_shift=2, predictor_dropout=0.1)
    stats = Updater(nets, UpdateConfig(lr=1e-3), 2).step(sampler.next_batch())
    assert 0 < stats["outcome_pairs"] <= stats["pairs"]
    assert 0.0 <= stats["outcome_sign_accuracy"] <= 1.0
