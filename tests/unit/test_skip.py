"""Skipping lanes (``--skip``): which rollouts are trained, and the states carried past the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from common.checkpoint import load_checkpoint
from memup.config import UpdateConfig, WalkConfig
from memup.detector import TargetRule
from memup.lazy import TopOneTargets
from memup.sampler import LaneSampler
from memup.training import MemoryTraining
from tasks.tmaze.env import lazy_tmaze_episode, lazy_tmaze_episodes, random_tmaze_episodes
from tasks.tmaze.networks import tmaze_nets
from tests.unit.resume_support import assert_same_networks


def _top_one(eps: list) -> None:
    for e in eps:
        e.extras["targets"] = TopOneTargets(np.array([len(e) - 1]), len(e))


def test_skips_train_first_and_last_rollouts_and_sample_between() -> None:
    rng = np.random.default_rng(3)
    sampler = LaneSampler(lambda n: random_tmaze_episodes(n, 400, "LNR", rng), _top_one,
                          lanes=3, rollout=20, skip=60, seed=1)
    trained: dict[int, tuple[object, list[int]]] = {}  # id → (episode, trained offsets)
    for _ in range(400):
        before = sampler.offsets.copy()
        batch = sampler.next_batch()
        for b, ep in enumerate(sampler.episodes):
            start = 0 if batch.fresh[b] else int(before[b])
            trained.setdefault(id(ep), (ep, []))[1].append(start)  # holds ep: ids stay unique
        sampler.skip_ahead()
    walks = list(trained.values())[:-3]  # the lanes' current episodes may be unfinished
    assert len(walks) >= 10
    gaps = []
    for ep, offsets in walks:
        assert offsets[0] == 0 and offsets[-1] == (len(ep) - 1) // 20 * 20  # type: ignore[arg-type]
        assert not np.mod(offsets, 20).any() and (np.diff(offsets) >= 20).all()
        gaps.extend(np.diff(offsets[:-1]).tolist())  # the last step is cut short by the end
    assert min(gaps) == 20 and max(gaps) <= 20 + 120
    assert 60 < np.mean(gaps) < 100  # mean stride: r + skip = 80


def test_reused_marks_are_walked_by_as_many_lanes_each_with_its_own_copy() -> None:
    rng = np.random.default_rng(6)
    marked: list[int] = []

    def mark(eps: list) -> None:
        marked.append(len(eps))
        _top_one(eps)

    sampler = LaneSampler(lambda n: lazy_tmaze_episodes(n, 300, "LNR", rng), mark, lanes=2,
                          rollout=20, rebuild=lazy_tmaze_episode, reuse=3)
    walks = [sampler._next_episode() for _ in range(12)]
    assert marked == [2, 2]  # 12 walks from 4 marked episodes
    for first in (0, 6):
        group = walks[first : first + 6]
        for i in range(2):
            copies = group[i::2]
            assert len({id(e) for e in copies}) == 3  # own objects: own block caches
            for e in copies[1:]:
                assert np.array_equal(e.spec, copies[0].spec)  # type: ignore[attr-defined]
                assert np.array_equal(e.inputs[250:260], copies[0].inputs[250:260])
                assert np.array_equal(e.extras["targets"].peaks,
                                      copies[0].extras["targets"].peaks)
    assert not np.array_equal(walks[0].spec, walks[1].spec)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="reuse"):
        LaneSampler(lambda n: [], _top_one, lanes=2, rollout=20, reuse=0)


def test_a_skip_must_be_a_multiple_of_r() -> None:
    with pytest.raises(ValueError, match="multiple"):
        LaneSampler(lambda n: [], _top_one, lanes=2, rollout=20, skip=30)


def test_skipping_lanes_carry_the_state_of_everything_they_passed() -> None:
    torch.manual_seed(0)
    nets = tmaze_nets(hidden=16)
    rng = np.random.default_rng(2)
    # lr 0: the weights never move, so a lane's carried state must equal one pass of the
    # memory over its episode's prefix, trained rollouts and skipped steps alike.
    training = MemoryTraining(nets, lambda n: random_tmaze_episodes(n, 300, "LNR", rng), rng,
                              TargetRule(top_k=1, current=True), WalkConfig(3, 10, 1, skip=40),
                              UpdateConfig(lr=0.0), seed=4, stagger=True)
    for _ in range(12):
        training.step()
    h, c = training.updater.state
    checked = 0
    for b, (ep, offset) in enumerate(zip(training.sampler.episodes, training.sampler.offsets)):
        if offset >= len(ep):  # type: ignore[arg-type]
            continue
        with torch.no_grad():
            _, (hb, cb) = nets.memory(torch.from_numpy(ep.inputs[None, :offset]),  # type: ignore[union-attr]
                                      nets.memory.initial_state(1))
        torch.testing.assert_close(h[:, b], hb[:, 0])
        torch.testing.assert_close(c[:, b], cb[:, 0])
        checked += 1
    assert checked >= 2


TMAZE = ["train", "tmaze-memory", "--length", "300", "--rollout", "10", "--lanes", "4",
         "--eval-every", "10", "--eval-episodes", "4", "--threads", "1", "--device", "cpu",
         "--lazy", "--stagger", "--seed", "2", "--reuse", "2", "--skip", "30"]


def test_skipping_run_resumes_bit_for_bit_and_may_change_its_skip(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert main([*TMAZE, "--max-updates", "40", "--run-dir", str(straight)]) == 0
    assert main([*TMAZE, "--max-updates", "20", "--run-dir", str(halves)]) == 0
    assert main([*TMAZE, "--max-updates", "40", "--run-dir", str(halves), "--resume"]) == 0
    a = assert_same_networks(straight, halves)
    b = load_checkpoint(halves / "checkpoint.pt")["training"]
    assert torch.equal(a["sampler"]["offsets"], b["sampler"]["offsets"])
    # the skip only decides which rollouts come next: a resumed run may change it
    assert main([*TMAZE[:-1], "60", "--max-updates", "50", "--run-dir", str(halves),
                 "--resume"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*TMAZE[:-1], "15", "--max-updates", "5", "--run-dir", str(tmp_path / "odd")])
    assert "must be a multiple of --rollout" in capsys.readouterr().err
