"""Linear probes: they find a bit that is linearly present and nothing where there is none."""

from __future__ import annotations

import numpy as np
import torch

from memup.episode import Episode
from memup.memory import Memory, VectorEncoder
from tasks.two_colors.probe import (
    colour_probe,
    fit_logistic,
    halves,
    memory_states,
    splice,
    window_signs,
)


def test_fit_logistic_separates_a_linear_bit_and_not_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=gen)
    bit = (x[:, 3] > 0).long()
    train, test = halves(400)
    found = fit_logistic(x[train], bit[train], x[test], bit[test])
    assert found["test_accuracy"] > 0.95 and found["n_test"] == 200
    noise = torch.randint(0, 2, (400,), generator=gen)
    blind = fit_logistic(x[train], noise[train], x[test], noise[test])
    assert 0.35 < blind["test_accuracy"] < 0.65


def cued_episodes(length: int, cue_step: int, seed: int) -> tuple[np.ndarray, list[Episode]]:
    """60 noisy episodes, each showing its 0/1 bit (as ±1) at ``cue_step`` only."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, 60)
    episodes = []
    for bit in bits:
        inputs = np.zeros((length, 2), np.float32)
        inputs[cue_step, 0] = 1.0 if bit else -1.0
        inputs[:, 1] = 0.1 * rng.normal(size=length)
        episodes.append(Episode(inputs, inputs, np.zeros(length, np.float32)))
    return bits, episodes


def test_colour_probe_reads_a_bit_the_memory_carries() -> None:
    torch.manual_seed(0)
    memory = Memory(VectorEncoder(2, 0, hidden=8), 16, chrono_horizon=400)
    bits, episodes = cued_episodes(300, cue_step=0, seed=0)
    states = memory_states(memory, episodes[:2], [np.array([5, 250])] * 2)
    assert [s.shape for s in states] == [(2, 16), (2, 16)]
    # A chrono-initialised LSTM keeps some of step 0 for hundreds of steps even untrained.
    found = colour_probe(memory, episodes, bits, step=100, swap_steps=1)
    assert found["episodes"] == 60 and found["test_accuracy"] > 0.8
    # Step 0 swapped for the other bit's: the probe's answer follows the swapped-in step.
    assert found["n_swapped"] == 30 and found["swap_follows_swapped"] > 0.8


def test_swap_control_tells_a_late_cue_from_the_swapped_start() -> None:
    # The bit is shown at step 50, after the swapped 10 steps: answers follow the episode's
    # own later cue, not the swapped-in start.
    torch.manual_seed(0)
    memory = Memory(VectorEncoder(2, 0, hidden=8), 16, chrono_horizon=400)
    bits, episodes = cued_episodes(120, cue_step=50, seed=1)
    found = colour_probe(memory, episodes, bits, step=100, swap_steps=10)
    assert found["test_accuracy"] > 0.8 and found["swap_follows_swapped"] < 0.2


def test_splice_joins_every_array_at_the_step() -> None:
    head = Episode(np.zeros((6, 2), np.float32), np.zeros((6, 1), np.float32),
                   np.zeros(6, np.float32), {"context": np.zeros((6, 3), np.float32)})
    tail = Episode(np.ones((8, 2), np.float32), np.ones((8, 1), np.float32),
                   np.ones(8, np.float32), {"context": np.ones((8, 3), np.float32)})
    joined = splice(head, tail, 4)
    assert len(joined) == 8 and joined.inputs[:4].sum() == 0 and joined.inputs[4:].min() == 1
    assert joined.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert joined.extras["context"][3].sum() == 0 and joined.extras["context"][4].sum() == 3


def test_cross_validated_penalty_avoids_one_that_flattens_the_probe() -> None:
    # 60 training samples, 20 features, one noisy signal: a penalty of 1 shrinks w until
    # the bias (the majority class) decides; the penalty chosen on the training half alone
    # does not, and the test half is scored once.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(400, 20, generator=gen)
    bit = (x[:, 0] + 0.5 * torch.randn(400, generator=gen) > 0).long()
    train, test = np.arange(60), np.arange(60, 400)
    flat = fit_logistic(x[train], bit[train], x[test], bit[test], l2=1.0)
    chosen = fit_logistic(x[train], bit[train], x[test], bit[test], l2=None)
    assert chosen["l2"] < 1.0
    assert chosen["test_accuracy"] > flat["test_accuracy"] + 0.1


class _Xor(torch.nn.Module):
    """A predictor that answers with the memory's unit 0 times the query's sign."""

    def forward(self, memory: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        return memory[:, 0] * queries[:, 0]


def test_window_signs_asks_the_state_about_the_next_pickups_only(monkeypatch) -> None:
    episodes, bits, rng = [], [1.0, -1.0, 1.0, -1.0], np.random.default_rng(2)
    for bit in bits:
        queries = rng.choice([-1.0, 1.0], size=(30, 1)).astype(np.float32)
        labels = np.zeros(30, np.float32)
        labels[[5, 12, 25]] = bit * queries[[5, 12, 25], 0]  # the XOR of bit and item
        labels[3] = 1.0  # before the asked state: not counted
        episodes.append(Episode(np.zeros((30, 1), np.float32), queries, labels))
    # Unit-level isolation: the memory's state at the asked step is the episode's bit.
    monkeypatch.setattr("tasks.two_colors.probe.memory_states",
                        lambda memory, eps, positions, device:
                        [torch.tensor([[bits[i]]]) for i in range(len(eps))])
    memory = Memory(VectorEncoder(1, 0, hidden=4), 4)
    found = window_signs(memory, _Xor(), episodes, step=4, horizon=10)
    assert found == {"step": 4, "pickups": 8, "sign_accuracy": 1.0}  # steps 5 and 12 only
    monkeypatch.setattr("tasks.two_colors.probe.memory_states",
                        lambda memory, eps, positions, device:
                        [torch.ones(1, 1) for _ in eps])  # a state without the bit
    blind = window_signs(memory, _Xor(), episodes, step=4, horizon=10)
    assert blind["sign_accuracy"] < 0.9
