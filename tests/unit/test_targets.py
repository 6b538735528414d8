"""Tests for target selection: time-dependent top-K, prediction steps, current step, compose."""

from __future__ import annotations

import numpy as np
import pytest

from memup.targets import (
    compose,
    current_step,
    prediction_steps,
    spread_peaks,
    top_k_future,
    top_k_future_batch,
)


def brute_top_k(scores: np.ndarray, k: int) -> list[list[int]]:
    """For each t: the steps k ≥ t sorted by (score desc, index desc), first K."""
    length = len(scores)
    rows = []
    for t in range(length):
        order = sorted(range(t, length), key=lambda i: (-scores[i], -i))
        rows.append(order[:k])
    return rows


def check_against_brute(scores: np.ndarray, k: int, rows: np.ndarray) -> None:
    """Full rows hold exactly the brute-force set; short (end) rows are padded repeats."""
    length = len(scores)
    expected = brute_top_k(scores, k)
    assert rows.shape == (length, k)
    assert rows.dtype == np.int64
    for t in range(length):
        row = rows[t]
        remaining = length - t
        if remaining >= k:
            assert len(set(row.tolist())) == k, (t, row)
            assert set(row.tolist()) == set(expected[t]), (t, row, expected[t])
        else:
            assert np.all(row >= t), (t, row)
            assert set(row.tolist()) == set(range(t, length)), (t, row)


def random_scores(rng: np.random.Generator, length: int, ties: bool) -> np.ndarray:
    if ties:
        return rng.integers(0, 3, size=length).astype(np.float64)
    return rng.normal(size=length)


@pytest.mark.parametrize("ties", [False, True])
def test_top_k_matches_brute_force(ties: bool) -> None:
    rng = np.random.default_rng(0 if ties else 1)
    for _ in range(150):
        length = int(rng.integers(1, 25))
        k = int(rng.integers(1, 8))
        scores = random_scores(rng, length, ties)
        rows = top_k_future(scores, k, np.random.default_rng(int(rng.integers(1 << 30))))
        check_against_brute(scores, k, rows)


def test_all_equal_scores_pick_the_latest_steps() -> None:
    scores = np.zeros(12)
    rows = top_k_future(scores, 3, np.random.default_rng(0))
    for t in range(12 - 3 + 1):
        assert set(rows[t].tolist()) == {9, 10, 11}


def test_k_one_fast_path_equals_brute_force_exactly() -> None:
    rng = np.random.default_rng(2)
    for case in range(200):
        length = int(rng.integers(1, 30))
        scores = random_scores(rng, length, ties=case % 2 == 0)
        rows = top_k_future(scores, 1, np.random.default_rng(0))
        assert rows.shape == (length, 1)
        expected = np.array([r[0] for r in brute_top_k(scores, 1)])
        np.testing.assert_array_equal(rows[:, 0], expected)


def test_k_one_fast_path_agrees_with_general_path() -> None:
    """Column sets of K=2 contain the K=1 pick (the K=1 winner is always in the top 2)."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        length = int(rng.integers(2, 30))
        scores = rng.integers(0, 4, size=length).astype(np.float64)
        one = top_k_future(scores, 1, np.random.default_rng(0))[:, 0]
        two = top_k_future(scores, 2, np.random.default_rng(0))
        for t in range(length):
            assert one[t] in two[t]


def test_k_larger_than_episode() -> None:
    rng = np.random.default_rng(4)
    for length in (1, 2, 5, 9):
        scores = rng.integers(0, 2, size=length).astype(np.float64)
        k = length + 3
        rows = top_k_future(scores, k, np.random.default_rng(length))
        assert rows.shape == (length, k)
        for t in range(length):
            assert np.all(rows[t] >= t)
            assert set(rows[t].tolist()) == set(range(t, length))


def test_end_padding_rows() -> None:
    rng = np.random.default_rng(5)
    length, k = 20, 6
    scores = rng.normal(size=length)
    rows = top_k_future(scores, k, np.random.default_rng(0))
    for t in range(length - k + 1, length):
        assert len(rows[t]) == k
        assert np.all(rows[t] >= t)
        assert set(rows[t].tolist()) == set(range(t, length))
    # The last row can only ever target the last step.
    assert np.all(rows[-1] == length - 1)


def test_batch_equals_per_episode_calls() -> None:
    rng = np.random.default_rng(6)
    for k in (1, 2, 4):
        lengths = [1, 3, 17, 8, 17, 30]
        scores = [rng.integers(0, 4, size=n).astype(np.float64) for n in lengths]
        batch = top_k_future_batch(scores, k, np.random.default_rng(11))
        assert len(batch) == len(scores)
        for s, rows in zip(scores, batch):
            single = top_k_future(s, k, np.random.default_rng(12))
            assert rows.shape == single.shape == (len(s), k)
            full = max(0, len(s) - k + 1)
            # Rows with K or more remaining steps do not depend on the padding RNG.
            np.testing.assert_array_equal(rows[:full], single[:full])
            for t in range(full, len(s)):
                assert set(rows[t].tolist()) == set(single[t].tolist())
            check_against_brute(s, k, rows)


def test_spacing_spends_the_targets_on_distinct_outcomes() -> None:
    # Three outcomes, each making 4 neighbouring steps surprising (an outcome summed over 4
    # rewards), the strongest first: plain top-3 takes 3 steps of the first outcome.
    scores = np.array([0, 0, 1, 1, 1, 1, 0, 0, .9, .9, .9, .9, 0, .8, .8, .8, .8, .1])
    plain = top_k_future(scores, 3, np.random.default_rng(0))
    assert set(plain[0].tolist()) <= {2, 3, 4, 5}
    spaced = top_k_future(scores, 3, np.random.default_rng(0), spacing=4)
    assert sorted(spaced[0].tolist()) == [5, 11, 16]  # one step (the last) per outcome
    # From step 14 one peak (16) remains: demoted steps fill the rest of the row.
    assert np.all(spaced[14] >= 14) and len(set(spaced[14].tolist())) == 3


def test_spread_peaks_keeps_peaks_and_the_order_of_the_rest() -> None:
    rng = np.random.default_rng(3)
    padded = np.full((2, 40), -np.inf)
    padded[0] = rng.normal(size=40)
    padded[1, :25] = rng.normal(size=25)
    spread = spread_peaks(padded, 3)
    for row, out in zip(padded, spread):
        n = int(np.isfinite(row).sum())
        peak = [all(row[t] >= row[u] for u in range(max(0, t - 2), t))
                and all(row[t] > row[u] for u in range(t + 1, min(n, t + 3))) for t in range(n)]
        np.testing.assert_array_equal(out[:n][peak], row[:n][peak])
        assert out[:n][~np.array(peak)].max() < out[:n][peak].min()
        rest = ~np.array(peak)
        np.testing.assert_array_equal(np.argsort(out[:n][rest], kind="stable"),
                                      np.argsort(row[:n][rest], kind="stable"))
        assert np.all(np.isneginf(out[n:]))
    np.testing.assert_array_equal(spread_peaks(padded, 1), padded)


def reference_prediction_steps(start: int, end: int, f: int) -> list[int]:
    steps = {s for s in range(start, end) if (s - start + 1) % f == 0}
    steps.add(end - 1)
    return sorted(steps)


def test_prediction_steps_every_step() -> None:
    np.testing.assert_array_equal(prediction_steps(7, 12, 1), np.arange(7, 12))


def test_prediction_steps_frequency_equal_to_rollout() -> None:
    np.testing.assert_array_equal(prediction_steps(20, 30, 10), [29])


def test_prediction_steps_short_final_rollout() -> None:
    # A final rollout of 3 steps with f = 5 predicts only at its last step.
    np.testing.assert_array_equal(prediction_steps(40, 43, 5), [42])
    # With f = 2 it predicts at the 2nd step and the last.
    np.testing.assert_array_equal(prediction_steps(40, 43, 2), [41, 42])


def test_prediction_steps_against_reference() -> None:
    for start in (0, 3, 50):
        for length in range(1, 13):
            for f in range(1, 13):
                got = prediction_steps(start, start + length, f)
                assert got.dtype == np.int64
                assert got.tolist() == reference_prediction_steps(start, start + length, f)


def test_current_step_and_compose() -> None:
    cur = current_step(5)
    assert cur.shape == (5, 1) and cur.dtype == np.int64
    np.testing.assert_array_equal(cur[:, 0], np.arange(5))
    top = top_k_future(np.arange(5, dtype=np.float64)[::-1].copy(), 2, np.random.default_rng(0))
    both = compose(top, cur)
    assert both.shape == (5, 3)
    np.testing.assert_array_equal(both[:, :2], top)
    np.testing.assert_array_equal(both[:, 2], np.arange(5))
    np.testing.assert_array_equal(compose(cur), cur)
