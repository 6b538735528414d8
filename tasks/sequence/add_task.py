"""The adding problem (Add-N), vectorised: at the last step, the sum of the two marked values.

As defined in the MemUP paper (Sorokin et al., 2022, "Explain My Surprise: Learning Efficient
Long-Term Memory by Predicting Uncertain Outcomes", NeurIPS 2022), Add; spec: memup-spec B.3 (Add).
"""

from __future__ import annotations

import numpy as np

from memup.episode import Episode


def add_episodes(n: int, length: int, rng: np.random.Generator) -> list[Episode]:
    """Generate ``n`` adding-problem sequences of ``length`` steps.

    Each step has a value in U[0, 1] and a mark; exactly one step in each half of the first
    ``length - 1`` steps is marked. The final step carries ``is_last = 1`` and its label is the
    sum of the two marked values; every other label is 0.

    Args:
        n: number of sequences.
        length: T, the sequence length (>= 3).
        rng: source of randomness.

    Returns:
        Episodes whose ``inputs`` and ``queries`` are the same float32 array
        ``[T, 3]`` = ``[value, mark, is_last]`` and whose ``labels`` are float32 ``[T]``.
    """
    if length < 3:
        raise ValueError(f"length must be >= 3 (two marks plus the final step), got {length}")
    if n <= 0:
        return []
    half = (length - 1) // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length - 1, size=n)
    rows = np.arange(n)

    features = np.zeros((n, length, 3), dtype=np.float32)
    features[:, :, 0] = rng.random((n, length), dtype=np.float32)
    features[rows, first, 1] = 1.0
    features[rows, second, 1] = 1.0
    features[:, -1, 2] = 1.0

    labels = np.zeros((n, length), dtype=np.float32)
    labels[:, -1] = features[rows, first, 0] + features[rows, second, 0]
    return [
        Episode(inputs=f, queries=f, labels=lab) for f, lab in zip(features, labels, strict=True)
    ]
