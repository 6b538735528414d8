"""Image step records: layout, agreement between the actor's and the episode encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import load_config
from tasks.frames import NO_ACTION, FrameEncoder, encode_frame_steps, frame_step_inputs
from tasks.registry import task_for


def memory_nets(config):  # type: ignore[no-untyped-def]
    return task_for(config).networks(config)


def policy_model(config):  # type: ignore[no-untyped-def]
    return task_for(config).policy(config)

SHAPE = (3, 64, 112)


def _episode(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    return frames, rng.integers(0, 8, n), rng.normal(size=n).astype(np.float32)


def test_inputs_and_queries_are_one_array_with_the_step_layout() -> None:
    frames, actions, rewards = _episode(5)
    inputs, queries, labels = encode_frame_steps(frames, actions, rewards)
    assert inputs is queries and inputs.dtype == np.uint8
    assert np.array_equal(inputs[:, : frames[0].size], frames.reshape(5, -1))
    assert inputs[0, -6] == NO_ACTION and inputs[0, -4:].view("<f4")[0] == 0.0
    assert list(inputs[1:, -6]) == list(actions[:-1])
    assert list(inputs[:, -5]) == list(actions)
    assert np.array_equal(inputs[1:, -4:].copy().view("<f4")[:, 0], rewards[:-1])
    assert np.array_equal(labels, rewards)


def test_episode_starts_clear_the_previous_step() -> None:
    frames, actions, rewards = _episode(6)
    inputs, _, _ = encode_frame_steps(frames, actions, rewards, starts=np.array([0, 3]))
    assert inputs[3, -6] == NO_ACTION and inputs[3, -4:].view("<f4")[0] == 0.0
    assert inputs[4, -6] == actions[3]


def test_actor_records_match_episode_records_except_the_unknown_action() -> None:
    frames, actions, rewards = _episode(4)
    whole, _, _ = encode_frame_steps(frames, actions, rewards)
    prev_a = np.concatenate([[-1], actions[:-1]])
    prev_r = np.concatenate([[7.0], rewards[:-1]]).astype(np.float32)  # ignored at a start
    live = frame_step_inputs(frames, prev_a, prev_r)
    assert np.array_equal(np.delete(live, -5, axis=1), np.delete(whole, -5, axis=1))
    assert (live[:, -5] == NO_ACTION).all()


def test_encoders_read_their_own_fields() -> None:
    frames, actions, rewards = _episode(3)
    records, _, _ = encode_frame_steps(frames, actions, rewards)
    x = torch.from_numpy(records)
    memory_view = FrameEncoder(SHAPE, 8, "input")(x[None])[0]
    assert memory_view.shape == (3, 256 + 8 + 1)
    assert memory_view[0, -9:].abs().sum() == 0  # no previous action or reward at a start
    assert memory_view[1, 256 + actions[0]] == 1 and memory_view[1, -1] == rewards[0]
    query_view = FrameEncoder(SHAPE, 8, "query")(x)
    assert torch.equal(query_view[:, 256:].argmax(-1), torch.from_numpy(actions))


def test_bad_frames_are_refused() -> None:
    frames, actions, rewards = _episode(3)
    with pytest.raises(ValueError, match="shape mismatch"):
        encode_frame_steps(frames.astype(np.float32), actions, rewards)
    with pytest.raises(ValueError, match="CNN size"):
        FrameEncoder(SHAPE, 8, size="huge")


def test_two_colors_task_builds_networks_that_read_its_records() -> None:
    config = load_config(overrides=["task.env=two-colors", "task.length=1050",
                                    "memup.hidden=32", "ppo.mode=lstm"])
    spec = task_for(config)
    frames, actions, rewards = _episode(6)
    inputs, queries, labels = spec.encode(frames, actions, rewards)
    nets = memory_nets(config)
    out, _ = nets.memory(torch.from_numpy(inputs)[None], nets.memory.initial_state(1))
    pred = nets.predictor(out[0], torch.from_numpy(queries))
    assert out.shape == (1, 6, 32) and pred.shape == (6,)
    assert labels[-1] == rewards[-1] and np.isclose(labels[0], rewards[:5].sum())  # 5-step sums
    logits, values = policy_model(config).forward_sequence(torch.from_numpy(inputs)[None])
    assert logits.shape == (1, 6, 8) and values.shape == (1, 6)
    assert spec.succeeded(0.02, 1050, 0.0) and not spec.succeeded(1.0, 200, 1.0)
    assert spec.check_obs(frames) is None and "dtype" in spec.check_obs(frames.astype(np.int16))


def test_two_colors_outcomes_are_the_pickups_on_the_right_side_of_zero() -> None:
    spec = task_for(load_config(overrides=["task.env=two-colors"]))
    labels = np.array([0.02, 1.02, -0.98, 0.02, 1.02], dtype=np.float32)
    predictions = np.array([0.0, 0.4, 0.3, 5.0, -0.1], dtype=np.float32)
    surprise = (predictions - labels) ** 2
    assert spec.hits(labels, surprise) == [1, 0, 0]


def test_frame_heads_read_memory_and_frame_in_actor_and_learner_alike() -> None:
    from learner.rollouts import rollout_batch
    from rl.policy import FramePolicyInputs
    from rl.ppo import PPOConfig, PPOTrainer
    from tasks.frame_heads import FrameHeads

    config = load_config(overrides=["task.env=two-colors", "memup.hidden=16",
                                    "ppo.frame_features=true", "ppo.hidden=32"])
    spec = task_for(config)
    heads = policy_model(config)
    assert isinstance(heads, FrameHeads)
    memory = memory_nets(config).memory.eval()

    class _Rollout:
        def __init__(self, n: int, seed: int) -> None:
            frames, actions, rewards = _episode(n, seed)
            self.arrays = {"obs": frames, "action": actions, "reward": rewards,
                           "log_prob": np.full(n, -2.0, np.float32),
                           "value": np.zeros(n, np.float32)}

    batch = rollout_batch([_Rollout(5, 1), _Rollout(3, 2)], spec, memory, with_records=True)
    assert isinstance(batch.inputs, FramePolicyInputs)
    assert batch.inputs.features.shape == (2, 5, 16) and batch.inputs.records.dtype == torch.uint8
    # The actor's path (one step at a time) gives the learner's logits for the same step.
    with torch.no_grad():
        logits, _ = heads.forward_sequence(batch.inputs)
        live = torch.from_numpy(spec.step_inputs(_episode(5, 1)[0][:1], np.array([-1]),
                                                 np.zeros(1, np.float32)))
        m, _ = memory(live[:, None], memory.initial_state(1))
        step_logits, _ = heads(m[:, 0], live)
    assert torch.allclose(step_logits[0], logits[0, 0], atol=1e-5)
    before = [p.detach().clone() for p in heads.encoder.parameters()]
    PPOTrainer(heads, PPOConfig(epochs=1, minibatch_episodes=2)).update(batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, heads.encoder.parameters()))


def test_two_colors_outcomes_sum_the_next_rewards_within_each_episode() -> None:
    from tasks.frames import forward_sums

    rewards = np.array([0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0], dtype=np.float32)
    sums = forward_sums(rewards, np.array([0, 4]), 3)
    assert list(sums) == [1.0, 1.0, 1.0, 0.0, -1.0, 0.0, 0.0]  # nothing leaks across 3|4
    spec = task_for(load_config(overrides=["task.env=two-colors", "task.outcome_steps=3"]))
    frames, actions, _ = _episode(7)
    _, _, labels = spec.encode(frames, actions, rewards, np.array([0, 4]))
    assert np.array_equal(labels, sums)
    skipped = forward_sums(rewards, np.array([0, 4]), 2, skip=1)
    assert list(skipped) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # k+1, k+2; 4's own -1 out
    spec = task_for(load_config(overrides=["task.env=two-colors", "task.outcome_steps=2",
                                            "task.outcome_skip=1"]))
    _, _, labels = spec.encode(frames, actions, rewards, np.array([0, 4]))
    assert np.array_equal(labels, skipped)


def test_data_envs_spread_the_damaging_floor_over_slots() -> None:
    from tasks.two_colors.task import data_slot_damaged

    assert [data_slot_damaged(0.5, s) for s in range(4)] == [False, True, False, True]
    assert all(data_slot_damaged(1.0, s) for s in range(5))
    assert not any(data_slot_damaged(0.0, s) for s in range(5))
    assert sum(data_slot_damaged(0.25, s) for s in range(8)) == 2
    mixed = load_config(overrides=["task.env=two-colors", "task.data_floor_damage_share=0.5"])
    assert task_for(mixed).swaps_data_envs
    assert not task_for(load_config(overrides=["task.env=two-colors"])).swaps_data_envs


def test_random_actions_are_held_for_a_while_and_restart_with_episodes() -> None:
    from actor.random_policy import RandomActions

    policy = RandomActions(8, 3, hold=6, rng=np.random.default_rng(0))
    steps = np.stack([policy.sample() for _ in range(300)])
    changes = (np.diff(steps, axis=0) != 0).sum()
    assert changes < 300 * 3 / 2  # held: far fewer changes than fresh draws every step
    assert set(np.unique(steps)) == set(range(8))
    policy.left[:] = 5
    first = np.array([True, False, False])
    before = policy.current.copy()
    policy.sample(first)
    assert policy.left[0] < 6 and (policy.left[1:] == 4).all()
    assert (policy.current[1:] == before[1:]).all()
    single = RandomActions(8, 2, hold=1, rng=np.random.default_rng(1))
    fresh = np.stack([single.sample() for _ in range(200)])
    assert (np.diff(fresh, axis=0) != 0).mean() > 0.8


def test_weighted_random_actions_follow_their_weights() -> None:
    from actor.random_policy import RandomActions

    weights = (1, 1, 4, 0.25, 2, 0.25, 2, 0.25)
    policy = RandomActions(8, 64, hold=1, rng=np.random.default_rng(2), weights=weights)
    drawn = np.concatenate([policy.sample() for _ in range(500)])
    share = np.bincount(drawn, minlength=8) / len(drawn)
    expected = np.array([1, 1, 4, 0.25, 2, 0.25, 2, 0.25]) / 10.75
    assert np.abs(share - expected).max() < 0.01
    # the log-probabilities the actor publishes are those of the weights, not of 1/8
    assert np.allclose(policy.log_probabilities(np.array([2, 3])), np.log(expected[[2, 3]]))
    uniform = RandomActions(8, 1, hold=1, rng=np.random.default_rng(2))
    assert np.allclose(uniform.log_probabilities(np.arange(8)), -np.log(8))
    with pytest.raises(ValueError, match="need 8 non-negative numbers"):
        RandomActions(8, 1, hold=1, rng=np.random.default_rng(0), weights=(1, 2, 3))


def test_two_colors_spec_matches_the_env_contract() -> None:
    from tasks.two_colors.env import FRAME_SHAPE, N_ACTIONS

    spec = task_for(load_config(overrides=["task.env=two-colors"]))
    assert spec.spec.obs_shape == tuple(FRAME_SHAPE) and spec.spec.n_actions == N_ACTIONS
