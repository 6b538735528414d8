"""Tests for the T-Maze env, its wrapper, the episode encoding and the random generator."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from memup.episode import Episode
from tasks.tmaze.env import PrevActionReward, TMazeEnv, random_tmaze_episodes, tmaze_episode


def _rollout(env: TMazeEnv, seed: int | None = None, options: dict | None = None, actions=None):
    """Run one episode; return obs seen before each action, actions, rewards, final obs, info."""
    obs, info = env.reset(seed=seed, options=options)
    seen, acts, rews = [], [], []
    rng = np.random.default_rng(seed)
    t, done = 0, False
    while not done:
        a = int(actions[t]) if actions is not None else int(rng.integers(2))
        seen.append(obs)
        acts.append(a)
        obs, r, done, truncated, info = env.step(a)
        assert not truncated
        rews.append(r)
        t += 1
    return np.array(seen), np.array(acts), np.array(rews), obs, info


@pytest.mark.parametrize("mode", ["L", "LN", "LNR"])
def test_observation_layout(mode: str) -> None:
    env = TMazeEnv(mode, length=20)
    for seed in range(30):
        seen, _, _, final, info = _rollout(env, seed=seed)
        hint = -1.0 if info["clue"] == 0 else 1.0
        assert seen.dtype == np.float32 and seen.shape[1] == 3
        assert seen[0, 0] == hint
        assert np.all(seen[1:, 0] == 0.0)
        assert np.all(seen[:-1, 1] == 0.0) and seen[-1, 1] == 1.0
        if "N" in mode:
            assert np.all(np.abs(seen[:, 2]) == 1.0)
        else:
            assert np.all(seen[:, 2] == 0.0)
        assert np.all(final == 0.0)
        assert info["episode_len"] == len(seen)


def test_noise_takes_both_signs() -> None:
    seen, *_ = _rollout(TMazeEnv("LN", length=200), seed=0)
    assert set(np.unique(seen[:, 2]).tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("mode", ["L", "LN"])
def test_fixed_length(mode: str) -> None:
    env = TMazeEnv(mode, length=7)
    assert env.max_episode_steps == 7
    for seed in range(50):
        seen, *_ = _rollout(env, seed=seed)
        assert len(seen) == 7


def test_random_length_range_and_extremes() -> None:
    env = TMazeEnv("LNR", length=5)
    assert env.max_episode_steps == 15
    lengths = {_rollout(env, seed=seed)[4]["episode_len"] for seed in range(500)}
    assert min(lengths) == 5 and max(lengths) == 15
    assert lengths <= set(range(5, 16))


def test_both_clues_occur() -> None:
    env = TMazeEnv("L", length=3)
    clues = {env.reset(seed=s)[1]["clue"] for s in range(50)}
    assert clues == {0, 1}


@pytest.mark.parametrize("clue", [0, 1])
def test_reward_by_action_and_clue(clue: int) -> None:
    env = TMazeEnv("LN", length=6)
    for action in (0, 1):
        _, _, rews, _, info = _rollout(env, seed=1, options={"clue": clue}, actions=[action] * 6)
        assert np.all(rews[:-1] == 0.0)
        assert rews[-1] == (4.0 if action == clue else -3.0)
        assert info["episode_success"] == (action == clue)
        assert info["clue"] == clue


def test_corridor_actions_have_no_effect() -> None:
    env = TMazeEnv("L", length=10)
    a, *_ = _rollout(env, seed=3, actions=[0] * 10)
    b, *_ = _rollout(env, seed=3, actions=[1] * 9 + [0])
    np.testing.assert_array_equal(a, b)


def test_step_after_termination_raises() -> None:
    env = TMazeEnv("L", length=2)
    _rollout(env, seed=0)
    with pytest.raises(RuntimeError):
        env.step(0)


def test_seeding_reproducible() -> None:
    env_a, env_b = TMazeEnv("LNR", length=30), TMazeEnv("LNR", length=30)
    for seed in (0, 1, 123):
        ra, rb = _rollout(env_a, seed=seed), _rollout(env_b, seed=seed)
        for x, y in zip(ra[:3], rb[:3], strict=True):
            np.testing.assert_array_equal(x, y)


def test_gymnasium_env_checker() -> None:
    check_env(TMazeEnv("LNR", length=10), skip_render_check=True)


# The checker warns about any wrapper and about the (deliberately) unbounded prev_reward box.
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gymnasium_env_checker_wrapped() -> None:
    check_env(PrevActionReward(TMazeEnv("LNR", length=10)), skip_render_check=True)


def test_wrapper_prev_action_and_reward() -> None:
    env = PrevActionReward(TMazeEnv("LN", length=4))
    obs, _ = env.reset(seed=0, options={"clue": 1})
    assert set(obs) == {"observation", "prev_action", "prev_reward"}
    np.testing.assert_array_equal(obs["prev_action"], [0.0, 0.0])
    np.testing.assert_array_equal(obs["prev_reward"], [0.0])
    assert obs["observation"][0] == 1.0
    for action in (1, 0, 1):
        obs, reward, done, _, _ = env.step(action)
        np.testing.assert_array_equal(obs["prev_action"], np.eye(2)[action])
        np.testing.assert_array_equal(obs["prev_reward"], [0.0])
        assert not done
    obs, reward, done, _, _ = env.step(0)
    assert done and reward == -3.0
    np.testing.assert_array_equal(obs["prev_action"], [1.0, 0.0])
    np.testing.assert_array_equal(obs["prev_reward"], [-3.0])


def test_tmaze_episode_encoding() -> None:
    obs = np.array([[1, 0, -1], [0, 0, 1], [0, 1, 1]], dtype=np.float32)
    actions = np.array([0, 1, 1])
    rewards = np.array([0.0, 0.0, 4.0])
    ep = tmaze_episode(obs, actions, rewards)
    assert isinstance(ep, Episode)
    assert ep.inputs.shape == (3, 6) and ep.inputs.dtype == np.float32
    assert ep.queries.shape == (3, 5) and ep.queries.dtype == np.float32
    assert ep.labels.dtype == np.float32
    np.testing.assert_array_equal(ep.inputs[:, :3], obs)
    np.testing.assert_array_equal(ep.inputs[:, 3:5], [[0, 0], [1, 0], [0, 1]])
    np.testing.assert_array_equal(ep.inputs[:, 5], [0, 0, 0])
    np.testing.assert_array_equal(ep.queries[:, :3], obs)
    np.testing.assert_array_equal(ep.queries[:, 3:], [[1, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(ep.labels, rewards)


def test_tmaze_episode_prev_reward_shift() -> None:
    obs = np.zeros((3, 3), dtype=np.float32)
    ep = tmaze_episode(obs, np.array([1, 0, 1]), np.array([2.0, -1.0, 5.0]))
    np.testing.assert_array_equal(ep.inputs[:, 5], [0.0, 2.0, -1.0])
    np.testing.assert_array_equal(ep.inputs[:, 3:5], [[0, 0], [0, 1], [1, 0]])


def test_tmaze_episode_matches_wrapper() -> None:
    env = PrevActionReward(TMazeEnv("LNR", length=8))
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(5)
    seen, acts, rews, dicts = [], [], [], []
    done = False
    while not done:
        a = int(rng.integers(2))
        dicts.append(obs)
        seen.append(obs["observation"])
        acts.append(a)
        obs, r, done, _, _ = env.step(a)
        rews.append(r)
    ep = tmaze_episode(np.array(seen), np.array(acts), np.array(rews))
    expected = np.array(
        [np.concatenate([d["observation"], d["prev_action"], d["prev_reward"]]) for d in dicts]
    )
    np.testing.assert_array_equal(ep.inputs, expected)


def test_tmaze_episode_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        tmaze_episode(np.zeros((3, 3)), np.zeros(4, dtype=int), np.zeros(4))


@pytest.mark.parametrize("mode", ["L", "LN", "LNR"])
def test_random_episodes_structure(mode: str) -> None:
    length = 12
    eps = random_tmaze_episodes(300, length, mode, np.random.default_rng(0))
    assert len(eps) == 300
    lengths = np.array([len(ep) for ep in eps])
    if "R" in mode:
        assert lengths.min() == length and lengths.max() == length + 10
    else:
        assert np.all(lengths == length)
    for ep in eps:
        assert ep.inputs.shape == (len(ep), 6) and ep.inputs.dtype == np.float32
        assert ep.queries.shape == (len(ep), 5) and ep.labels.dtype == np.float32
        assert ep.inputs[0, 0] in (-1.0, 1.0) and np.all(ep.inputs[1:, 0] == 0.0)
        assert np.all(ep.inputs[:-1, 1] == 0.0) and ep.inputs[-1, 1] == 1.0
        noise = ep.inputs[:, 2]
        assert np.all(np.abs(noise) == 1.0) if "N" in mode else np.all(noise == 0.0)
        assert np.all(ep.labels[:-1] == 0.0) and ep.labels[-1] in (4.0, -3.0)
        assert np.all(ep.inputs[0, 3:] == 0.0)
        np.testing.assert_array_equal(ep.inputs[1:, 3:5], ep.queries[:-1, 3:5])
        np.testing.assert_array_equal(ep.inputs[1:, 5], ep.labels[:-1])
        np.testing.assert_array_equal(ep.queries[:, 3:].sum(axis=1), 1.0)


def test_random_episodes_success_rate() -> None:
    eps = random_tmaze_episodes(2000, 5, "LNR", np.random.default_rng(1))
    success = np.mean([ep.labels[-1] == 4.0 for ep in eps])
    # Binomial(2000, 0.5) has std ~0.011; 0.06 is > 5 sigma.
    assert abs(success - 0.5) < 0.06
    clue_right = np.mean([ep.inputs[0, 0] == 1.0 for ep in eps])
    assert abs(clue_right - 0.5) < 0.06


def test_random_episodes_reproducible_and_long() -> None:
    a = random_tmaze_episodes(3, 50, "LNR", np.random.default_rng(7))
    b = random_tmaze_episodes(3, 50, "LNR", np.random.default_rng(7))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.inputs, y.inputs)
        np.testing.assert_array_equal(x.labels, y.labels)
    (long_ep,) = random_tmaze_episodes(1, 100_000, "LNR", np.random.default_rng(0))
    assert 100_000 <= len(long_ep) <= 100_010
    assert long_ep.inputs[-1, 1] == 1.0 and np.count_nonzero(long_ep.labels) == 1


@pytest.mark.parametrize("mode", ["L", "LN", "LNR"])
def test_random_episodes_agree_with_env(mode: str) -> None:
    eps = random_tmaze_episodes(20, 6, mode, np.random.default_rng(3))
    env = PrevActionReward(TMazeEnv(mode, length=6))
    for i, ep in enumerate(eps):
        clue = 0 if ep.inputs[0, 0] == -1.0 else 1
        actions = ep.queries[:, 3:].argmax(axis=1)
        obs, _ = env.reset(seed=i, options={"clue": clue, "length": len(ep)})
        for t, action in enumerate(actions):
            row = np.concatenate([obs["observation"], obs["prev_action"], obs["prev_reward"]])
            np.testing.assert_array_equal(row[:2], ep.inputs[t, :2])
            # The generator has its own RNG, so only the noise's magnitude can agree.
            assert abs(row[2]) == abs(ep.inputs[t, 2])
            np.testing.assert_array_equal(row[3:], ep.inputs[t, 3:])
            obs, reward, done, _, info = env.step(int(action))
            assert reward == ep.labels[t]
            assert done == (t == len(ep) - 1)
        assert info["episode_success"] == (ep.labels[-1] == 4.0)


def test_bad_mode_rejected() -> None:
    with pytest.raises(ValueError):
        TMazeEnv("XYZ", length=5)
    with pytest.raises(ValueError):
        random_tmaze_episodes(2, 5, "Q", np.random.default_rng(0))
