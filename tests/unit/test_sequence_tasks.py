"""Tests for the Copy, Scattered Copy and Add sequence generators and their registry."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from memup.episode import Episode
from tasks.sequence import (
    COPY_CLASSES,
    COPY_VOCAB,
    RECALL_SYMBOLS,
    SEQUENCE_TASKS,
    add_episodes,
    copy_episodes,
)


def test_constants() -> None:
    assert RECALL_SYMBOLS == 10 and COPY_CLASSES == 10 and COPY_VOCAB == 10


@pytest.mark.parametrize("blank_length", [0, 1, 100])
def test_copy_layout(blank_length: int) -> None:
    eps = copy_episodes(50, blank_length, np.random.default_rng(0))
    total = blank_length + 20
    assert len(eps) == 50
    for ep in eps:
        assert ep.inputs.shape == (total,) and ep.inputs.dtype == np.int64
        assert ep.labels.shape == (total,) and ep.labels.dtype == np.int64
        np.testing.assert_array_equal(ep.queries, ep.inputs)
        data = ep.inputs[:10]
        assert np.all((data >= 0) & (data <= 7))
        assert np.all(ep.inputs[10 : 10 + blank_length] == 8)
        assert np.all(ep.inputs[-10:] == 9)
        assert np.all(ep.labels[:-10] == 8)
        np.testing.assert_array_equal(ep.labels[-10:], data)


def test_copy_symbols_cover_alphabet_and_vary() -> None:
    eps = copy_episodes(200, 5, np.random.default_rng(1))
    data = np.stack([ep.inputs[:10] for ep in eps])
    assert set(np.unique(data).tolist()) == set(range(8))
    assert len({tuple(row) for row in data}) > 190


def test_copy_reproducible() -> None:
    a = copy_episodes(5, 30, np.random.default_rng(4), scattered=True)
    b = copy_episodes(5, 30, np.random.default_rng(4), scattered=True)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.inputs, y.inputs)


# 20 and 300 exercise both position samplers (argsort for few positions, rejection for many).
@pytest.mark.parametrize("blank_length", [0, 20, 300])
def test_scattered_copy(blank_length: int) -> None:
    eps = copy_episodes(100, blank_length, np.random.default_rng(2), scattered=True)
    total = blank_length + 20
    head = total - 10
    for ep in eps:
        assert ep.inputs.shape == (total,) and ep.inputs.dtype == np.int64
        assert np.all(ep.inputs[head:] == 9)
        body = ep.inputs[:head]
        assert np.all((body >= 0) & (body <= 8))
        positions = np.flatnonzero(body != 8)
        assert len(positions) == 10  # distinct positions, all data symbols
        assert np.all(np.diff(positions) > 0)
        assert np.all(ep.labels[:head] == 8)
        np.testing.assert_array_equal(ep.labels[head:], body[positions])


# head = 90 uses the argsort sampler, head = 300 the rejection sampler.
@pytest.mark.parametrize(("n", "head"), [(400, 90), (900, 300)])
def test_scattered_positions_spread_uniformly(n: int, head: int) -> None:
    eps = copy_episodes(n, head - 10, np.random.default_rng(3), scattered=True)
    positions = np.concatenate([np.flatnonzero(ep.inputs[:head] != 8) for ep in eps])
    counts = np.bincount(positions, minlength=head)
    expected = n * 10 / head  # 44 and 30 hits per position; binomial std ~6.6 and ~5.5
    # Loose (> 4 sigma) bounds: catches positions never used or a strongly skewed sampler.
    assert counts.min() > expected - 28 and counts.max() < expected + 28
    # The first and second halves are equally likely.
    assert abs(np.mean(positions < head // 2) - 0.5) < 0.05


def test_copy_rejects_negative_length() -> None:
    with pytest.raises(ValueError):
        copy_episodes(1, -1, np.random.default_rng(0))


@pytest.mark.parametrize("length", [3, 4, 101, 1000])
def test_add_layout(length: int) -> None:
    eps = add_episodes(100, length, np.random.default_rng(5))
    half = (length - 1) // 2
    for ep in eps:
        assert ep.inputs.shape == (length, 3) and ep.inputs.dtype == np.float32
        assert ep.labels.shape == (length,) and ep.labels.dtype == np.float32
        np.testing.assert_array_equal(ep.queries, ep.inputs)
        values, marks, is_last = ep.inputs.T
        assert np.all((values >= 0.0) & (values < 1.0))
        assert set(np.unique(marks).tolist()) <= {0.0, 1.0}
        marked = np.flatnonzero(marks)
        assert len(marked) == 2
        assert marked[0] < half <= marked[1] < length - 1
        np.testing.assert_array_equal(is_last, np.eye(length)[-1])
        assert np.all(ep.labels[:-1] == 0.0)
        assert ep.labels[-1] == pytest.approx(values[marked].sum(), abs=1e-6)


def test_add_label_statistics() -> None:
    eps = add_episodes(2000, 50, np.random.default_rng(6))
    finals = np.array([ep.labels[-1] for ep in eps])
    # The sum of two U[0,1] has mean 1 and std ~0.41; the mean of 2000 has std ~0.009.
    assert abs(finals.mean() - 1.0) < 0.05
    assert 0.0 <= finals.min() and finals.max() <= 2.0


def test_add_rejects_short_sequences() -> None:
    with pytest.raises(ValueError):
        add_episodes(1, 2, np.random.default_rng(0))


def digest(episodes: list[Episode]) -> str:
    h = hashlib.sha256()
    for ep in episodes:
        for a in (ep.inputs, ep.queries, ep.labels):
            h.update(str(a.dtype).encode())
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# Computed with actor/envs/sequence_tasks.py before the move to tasks/sequence/: the same seed
# gives the same sequences, bit for bit (runs and checkpoints depend on it).
PINNED = [
    (lambda: copy_episodes(64, 100, np.random.default_rng(0)),
     "0f5b7af052acad4f92c0308ac205097a59586b842879e870450d2f368c836777"),
    (lambda: copy_episodes(64, 20, np.random.default_rng(1), scattered=True),
     "f8583dd0db769a7106f4dbb0987f71103b055a5268a1fe6b6db3c6cacf9b0271"),
    (lambda: copy_episodes(64, 1000, np.random.default_rng(2), scattered=True),
     "a436871d9af5c7cbe17054abe45a3f357aec0d462aace504c9753a854e6999ca"),
    (lambda: add_episodes(64, 1000, np.random.default_rng(3)),
     "d11ec4fe531e2148b80ee5211c74dfc135d2b435a18d6c28d807c6a467fbd32c"),
    (lambda: add_episodes(64, 3, np.random.default_rng(4)),
     "aaae2fba76a5710b0bba65728c7c22b2a60459633652d1275b9bdcabb8a23100"),
]


@pytest.mark.parametrize(("generate", "expected"), PINNED,
                         ids=["copy", "scattered-argsort", "scattered-rejection", "add", "add-3"])
def test_same_seed_same_sequences(generate, expected: str) -> None:
    assert digest(generate()) == expected


def test_registry_names_the_three_tasks() -> None:
    assert set(SEQUENCE_TASKS) == {"copy", "scattered-copy", "add"}
    for name, task in SEQUENCE_TASKS.items():
        assert task.title == name


@pytest.mark.parametrize("name", ["copy", "scattered-copy", "add"])
def test_registry_entries_agree(name: str) -> None:
    task = SEQUENCE_TASKS[name]
    length = task.min_length + 30
    eps = task.episodes(4, length, np.random.default_rng(7))
    assert len(eps) == 4 and all(len(ep.labels) == length for ep in eps)
    classification = task.kind == "classification"
    assert all((ep.labels.dtype == np.int64) == classification for ep in eps)
    assert (task.metric, task.minimise) == (("accuracy", False) if classification
                                            else ("mse", True))
    # Only the scored last steps carry the outcome; everything before is a constant label.
    for ep in eps:
        assert len(np.unique(ep.labels[:-task.scored_steps])) == 1
    assert task.networks().kind == task.kind


def test_registry_matches_the_generators() -> None:
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    a = SEQUENCE_TASKS["scattered-copy"].episodes(3, 120, rng_a)
    b = copy_episodes(3, 100, rng_b, scattered=True)
    assert digest(a) == digest(b)
    a = SEQUENCE_TASKS["add"].episodes(3, 50, rng_a)
    b = add_episodes(3, 50, rng_b)
    assert digest(a) == digest(b)
