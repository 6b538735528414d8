"""Actors build memory inputs step by step; scorers and the learner build them per episode."""

from __future__ import annotations

import numpy as np

from memup.encoding import encode_steps, step_inputs


def test_step_inputs_match_the_episode_encoding() -> None:
    rng = np.random.default_rng(0)
    lengths = [5, 1, 7]
    obs = [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths]
    actions = [rng.integers(0, 2, size=n) for n in lengths]
    rewards = [rng.normal(size=n).astype(np.float32) for n in lengths]
    for o, a, r in zip(obs, actions, rewards):
        inputs, queries, labels = encode_steps(o, a, r, n_actions=2)
        prev_a, prev_r = -1, 0.0
        for t in range(len(a)):
            row = step_inputs(o[t:t + 1], np.array([prev_a]), np.array([prev_r]), 2)[0]
            np.testing.assert_array_equal(row, inputs[t])
            prev_a, prev_r = int(a[t]), float(r[t])
        np.testing.assert_array_equal(queries[:, 3 + 1], (a == 1).astype(np.float32))
        np.testing.assert_array_equal(labels, r)


def test_stream_encoding_does_not_leak_across_episode_starts() -> None:
    obs = np.ones((6, 2), dtype=np.float32)
    actions = np.array([1, 0, 1, 1, 0, 1])
    rewards = np.arange(6, dtype=np.float32) + 1
    inputs, _, _ = encode_steps(obs, actions, rewards, 2, starts=np.array([0, 3]))
    np.testing.assert_array_equal(inputs[3, 2:], np.zeros(3))
    np.testing.assert_array_equal(inputs[4, 2:], [0.0, 1.0, 4.0])
