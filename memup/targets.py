"""Target selection: which future steps k ≥ t each memory state m_t is trained to explain."""

from __future__ import annotations

import numpy as np


def top_k_future(scores: np.ndarray, k: int, rng: np.random.Generator,
                 spacing: int = 1) -> np.ndarray:
    """For every step t, the K highest-scoring steps among k ≥ t (the current step included).

    Ties go to the later step. Where fewer than K steps remain (t > T-K) the list is padded
    by repeating randomly chosen members of it, so every row has exactly K entries.

    Args:
        scores: ``[T]`` surprise of every step.
        k: targets per step.
        rng: for the padding.
        spacing: see :func:`spread_peaks` (1: plain top-K).

    Returns:
        ``[T, K]`` int64 step indices.
    """
    return top_k_future_batch([scores], k, rng, spacing)[0]


def top_k_future_batch(
    scores: list[np.ndarray], k: int, rng: np.random.Generator, spacing: int = 1
) -> list[np.ndarray]:
    """:func:`top_k_future` for several episodes at once, vectorised across them.

    A backward sweep keeps the top-K of the suffix: step t enters when it beats the weakest
    member (strictly, so equal scores keep the later step), which makes the whole selection
    O(T · K) numpy work shared by all episodes, instead of a sort per step.
    """
    n = len(scores)
    lengths = np.array([len(s) for s in scores])
    t_max = int(lengths.max())
    padded = np.full((n, t_max), -np.inf)
    for b, s in enumerate(scores):
        padded[b, : len(s)] = s
    padded = spread_peaks(padded, spacing)
    if k == 1:
        rows = _suffix_argmax(padded)
        return [rows[b, : lengths[b], None] for b in range(n)]
    member_idx = np.full((n, k), -1, dtype=np.int64)
    member_score = np.full((n, k), -np.inf)
    out = np.empty((n, t_max, k), dtype=np.int64)
    lanes = np.arange(n)
    big = np.iinfo(np.int64).max
    for t in range(t_max - 1, -1, -1):
        s = padded[:, t]
        weakest = member_score.min(axis=1)
        # Among equally weak members, replace the earliest (lowest priority on ties).
        is_weakest = member_score == weakest[:, None]
        # Empty slots hold index -1 and score -inf, so they are taken first.
        slot = np.where(is_weakest, member_idx, big).argmin(axis=1)
        enter = s > weakest
        member_idx[lanes[enter], slot[enter]] = t
        member_score[lanes[enter], slot[enter]] = s[enter]
        out[:, t] = member_idx
    results = []
    for b in range(n):
        rows = out[b, : lengths[b]]
        _pad_short_rows(rows, lengths[b], k, rng)
        results.append(rows)
    return results


def spread_peaks(padded: np.ndarray, spacing: int) -> np.ndarray:
    """Demotes every step that is not the peak of its ``spacing``-neighbourhood.

    One outcome can make several neighbouring steps surprising (an outcome summed over the
    next n rewards labels n steps), and a plain top-K then spends its K targets on a couple
    of outcomes. A step keeps its score if it beats the ``spacing - 1`` steps after it and
    is not beaten by the ``spacing - 1`` before it (plateaus keep their last step); the
    others drop below every kept step, their order unchanged, so they are chosen only where
    a suffix holds fewer than K peaks.

    Args:
        padded: ``[B, T]`` scores, ``-inf`` past each episode's end.
        spacing: the neighbourhood radius plus one; 1 changes nothing.

    Returns:
        ``[B, T]`` scores with the non-peaks demoted.
    """
    if spacing <= 1:
        return padded
    n, t_max = padded.shape
    w = spacing - 1
    edge = np.full((n, w), -np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([edge, padded, edge], axis=1), w, axis=1).max(axis=-1)
    before, after = windows[:, :t_max], windows[:, spacing:spacing + t_max]
    peak = (padded >= before) & (padded > after)
    finite = np.where(np.isfinite(padded), padded, np.nan)
    span = np.nan_to_num(np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1)) + 1.0
    return np.where(peak | ~np.isfinite(padded), padded, padded - span[:, None])


def _suffix_argmax(padded: np.ndarray) -> np.ndarray:
    """``[B, T]`` index of the maximum of ``padded[b, t:]``, later index on ties."""
    rev = padded[:, ::-1]
    t_max = padded.shape[1]
    # Running maximum from the end; the position where it was last raised is the arg-max.
    running = np.maximum.accumulate(rev, axis=1)
    raised = np.concatenate([np.ones((len(rev), 1), bool), running[:, 1:] > running[:, :-1]],
                            axis=1)
    pos = np.where(raised, np.arange(t_max)[None, :], 0)
    last_raise = np.maximum.accumulate(pos, axis=1)
    return (t_max - 1 - last_raise)[:, ::-1].astype(np.int64)


def _pad_short_rows(rows: np.ndarray, length: int, k: int, rng: np.random.Generator) -> None:
    """Fills the empty (-1) slots of the last K-1 rows with random repeats of their members."""
    for t in range(max(0, length - k + 1), length):
        row = rows[t]
        members = row[row >= 0]
        empty = row < 0
        row[empty] = rng.choice(members, size=int(empty.sum()), replace=True)


def current_step(length: int) -> np.ndarray:
    """``[T, 1]``: every step targets itself."""
    return np.arange(length, dtype=np.int64)[:, None]


def compose(*target_lists: np.ndarray) -> np.ndarray:
    """Concatenates several selectors' ``[T, K_i]`` lists into ``[T, ΣK_i]``."""
    return np.concatenate(target_lists, axis=1)


def prediction_steps(start: int, end: int, frequency: int) -> np.ndarray:
    """Prediction steps of the rollout ``[start, end)``: every f-th step plus the last.

    ``start+f-1, start+2f-1, …`` below ``end``, and ``end-1`` always.
    """
    steps = np.arange(start + frequency - 1, end, frequency, dtype=np.int64)
    if len(steps) == 0 or steps[-1] != end - 1:
        steps = np.append(steps, end - 1)
    return steps
