"""Tests for the frame encoders' thumbnail reconstruction (the Two-Colors auxiliary loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from memup.detector import TargetRule, mark_episodes
from memup.episode import Episode
from memup.sampler import LaneSampler
from memup.update import UpdateConfig, Updater
from tasks.frames import FrameEncoder, encode_frame_steps
from tasks.registry import task_for
from tasks.tmaze.networks import tmaze_nets
from tasks.two_colors.networks import two_colors_nets


def memory_nets(config):  # type: ignore[no-untyped-def]
    return task_for(config).networks(config)

torch.set_num_threads(1)
SHAPE = (3, 64, 112)


def block_frames(n: int, seed: int = 0) -> np.ndarray:
    """Frames of a grey floor with one coloured block each, of random colour and place."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, *SHAPE), 90, dtype=np.uint8)
    for frame in frames:
        y, x = rng.integers(0, 48), rng.integers(0, 96)
        frame[:, y:y + 16, x:x + 16] = rng.integers(0, 256, size=3, dtype=np.uint8)[:, None, None]
    return frames


def frame_episodes(n: int, length: int = 12) -> list[Episode]:
    rng = np.random.default_rng(n)
    episodes = []
    for i in range(n):
        actions = rng.integers(0, 8, size=length)
        rewards = rng.choice([0.0, 1.0, -1.0], size=length).astype(np.float32)
        inputs, queries, labels = encode_frame_steps(block_frames(length, seed=i), actions,
                                                     rewards)
        episodes.append(Episode(inputs, queries, labels))
    return episodes


def test_the_embedding_learns_to_draw_its_frame() -> None:
    torch.manual_seed(0)
    encoder = FrameEncoder(SHAPE, 8, "input", reconstruct=True)
    inputs, _, _ = encode_frame_steps(block_frames(32), np.zeros(32, np.int64),
                                      np.zeros(32, np.float32))
    records = torch.from_numpy(inputs)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    first = encoder.reconstruction_loss(records, 32).item()
    for _ in range(150):
        loss = encoder.reconstruction_loss(records, 32)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert encoder.thumbnail_shape == (3, 16, 28)
    assert encoder.reconstruction_loss(records, 32).item() < 0.5 * first


def test_networks_without_decoders_refuse_to_reconstruct() -> None:
    records = torch.from_numpy(encode_frame_steps(block_frames(2), np.zeros(2, np.int64),
                                                  np.zeros(2, np.float32))[0])
    with pytest.raises(ValueError, match="reconstruct=True"):
        FrameEncoder(SHAPE, 8).reconstruction_loss(records, 2)
    with pytest.raises(ValueError, match="reconstruct=True"):
        two_colors_nets(hidden=16).reconstruction_loss(records, records, 2)
    with pytest.raises(ValueError, match="reconstruct=True"):
        tmaze_nets(hidden=8).reconstruction_loss(torch.zeros(2, 6), torch.zeros(2, 5), 2)


def test_updates_train_both_decoders_and_report_the_loss() -> None:
    torch.manual_seed(0)
    nets = two_colors_nets(hidden=16, reconstruct=True)
    rng = np.random.default_rng(0)
    sampler = LaneSampler(frame_episodes, lambda eps: mark_episodes(eps, TargetRule(0, True),
                                                                     rng), 2, 6)
    updater = Updater(nets, UpdateConfig(lr=1e-3, reconstruction=1.0,
                                         reconstruction_frames=8), 2)
    decoders = [nets.memory.encoder.decoder, nets.predictor.query_encoder.decoder]
    before = [d.weight.detach().clone() for d in decoders]
    stats = updater.step(sampler.next_batch())
    assert stats["reconstruction_loss"] > 0
    assert all(not torch.equal(d.weight, b) for d, b in zip(decoders, before))
    # Without the weight the decoders get no gradient and the stats hold no such loss.
    plain = Updater(nets, UpdateConfig(lr=1e-3), 2)
    before = [d.weight.detach().clone() for d in decoders]
    assert "reconstruction_loss" not in plain.step(sampler.next_batch())
    assert all(torch.equal(d.weight, b) for d, b in zip(decoders, before))


def test_config_builds_decoders_only_for_image_tasks() -> None:
    config = load_config("configs/up_two_colors.toml")
    nets = memory_nets(config)
    assert config.memup.reconstruction > 0
    assert nets.memory.encoder.decoder is not None
    assert nets.predictor.query_encoder.decoder is not None
    plain = memory_nets(load_config(overrides=["task.env=two-colors", "memup.hidden=16"]))
    assert plain.memory.encoder.decoder is None
    with pytest.raises(ConfigError, match="only image tasks"):
        task_for(load_config(overrides=["memup.reconstruction=1.0"]))
    with pytest.raises(ConfigError, match="weight >= 0"):
        load_config(overrides=["task.env=two-colors", "memup.reconstruction=-1"])
    with pytest.raises(ConfigError, match="frames >= 1"):
        load_config(overrides=["task.env=two-colors", "memup.reconstruction_frames=0"])


def test_the_phase_one_recipe_trains_a_memory_phase_two_can_adopt() -> None:
    phase_one = load_config("configs/up_two_colors_phase1.toml")
    phase_two = load_config("configs/up_two_colors.toml")
    assert phase_one.task.length < phase_two.task.length == phase_one.memup.chrono
    assert phase_one.ppo.max_env_steps == 1 and phase_one.scorer.top_k > 1
    trained, adopting = memory_nets(phase_one), memory_nets(phase_two)
    for part in ("memory", "predictor"):
        source = getattr(trained, part).state_dict()
        getattr(adopting, part).load_state_dict(source)  # strict: every name and shape fits
