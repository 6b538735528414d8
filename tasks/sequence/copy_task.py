"""Copy-N and Scattered Copy-N, vectorised: recall 10 symbols after a long stretch of blanks.

As defined in the MemUP paper (Sorokin et al., 2022, "Explain My Surprise: Learning Efficient
Long-Term Memory by Predicting Uncertain Outcomes", NeurIPS 2022), Copy and Scattered Copy; spec:
memup-spec B.2 (Copy-N) and B.3 (Scattered Copy).
"""

from __future__ import annotations

import numpy as np

from memup.episode import Episode

RECALL_SYMBOLS = 10  # how many data symbols must be recalled at the end of a Copy sequence
N_DATA_SYMBOLS = 8  # data symbols are 0..7
BLANK = 8
MARKER = 9
COPY_CLASSES = 10  # output logits (only 0..8 are ever targets)
COPY_VOCAB = 10  # input tokens 0..9

# Below this many candidate positions, rejection sampling of distinct positions collides too
# often; a random-key argsort is used instead (its [n, M] matrix is small there).
_REJECTION_MIN_POSITIONS = 200


def _distinct_sorted_positions(
    n: int, n_positions: int, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Uniform random ``k``-subsets of ``range(n_positions)`` per row, sorted ascending.

    Returns:
        ``[n, k]`` int64.
    """
    if k > n_positions:
        raise ValueError(f"cannot choose {k} distinct positions out of {n_positions}")
    if n_positions < _REJECTION_MIN_POSITIONS:
        keys = rng.random((n, n_positions))
        return np.sort(np.argsort(keys, axis=1)[:, :k], axis=1).astype(np.int64)
    # i.i.d. draws conditioned on being distinct are uniform over ordered k-tuples, so their
    # sorted form is uniform over k-subsets; redraw only the rows that collided.
    pos = np.sort(rng.integers(0, n_positions, size=(n, k)), axis=1)
    bad = np.flatnonzero((np.diff(pos, axis=1) == 0).any(axis=1))
    while bad.size:
        redraw = np.sort(rng.integers(0, n_positions, size=(bad.size, k)), axis=1)
        pos[bad] = redraw
        bad = bad[(np.diff(redraw, axis=1) == 0).any(axis=1)]
    return pos


def copy_episodes(
    n: int, blank_length: int, rng: np.random.Generator, scattered: bool = False
) -> list[Episode]:
    """Generate ``n`` Copy-N sequences with N = ``blank_length`` + 20.

    Plain: input ``[h_1..h_10, 8 x L, 9 x 10]``, target ``[8 x 10, 8 x L, h_1..h_10]``.
    Scattered: the 10 data symbols sit at random distinct positions (in order) among the
    first N - 10 steps, blanks elsewhere; the target's last 10 steps are the symbols in
    order of appearance, 8 elsewhere.

    Args:
        n: number of sequences.
        blank_length: L, the number of blanks between the data and the recall markers.
        rng: source of randomness.
        scattered: generate the Scattered Copy variant.

    Returns:
        Episodes whose ``inputs`` and ``queries`` are the same int64 token array ``[N]``
        and whose ``labels`` are int64 ``[N]``. Rows are views into one batch array.
    """
    if blank_length < 0:
        raise ValueError(f"blank_length must be >= 0, got {blank_length}")
    if n <= 0:
        return []
    total = blank_length + 2 * RECALL_SYMBOLS
    head = total - RECALL_SYMBOLS  # steps before the recall markers
    symbols = rng.integers(0, N_DATA_SYMBOLS, size=(n, RECALL_SYMBOLS), dtype=np.int64)

    tokens = np.full((n, total), BLANK, dtype=np.int64)
    tokens[:, head:] = MARKER
    if scattered:
        pos = _distinct_sorted_positions(n, head, RECALL_SYMBOLS, rng)
        np.put_along_axis(tokens, pos, symbols, axis=1)
    else:
        tokens[:, :RECALL_SYMBOLS] = symbols

    labels = np.full((n, total), BLANK, dtype=np.int64)
    # Positions are sorted, so ``symbols`` is already in order of appearance.
    labels[:, head:] = symbols
    # inputs and queries share one array: the task's query at a step is its input token.
    return [
        Episode(inputs=tok, queries=tok, labels=lab)
        for tok, lab in zip(tokens, labels, strict=True)
    ]
