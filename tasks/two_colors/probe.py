"""Linear probes of what a trained memory holds, and how much its predictor needs it.

A probe is an L2-regularised logistic regression fitted on one half of the episodes (its
penalty chosen by cross-validation within that half) and scored on the other half.
:func:`colour_probe` reads a bit (the Two-Colors pillar colour) from the memory state long
after the bit was visible; :func:`pickup_signs` compares the trained predictor's sign
accuracy on pickup rewards with a memory-less predictor: a probe fitted on the same
target-frame features without m_t.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from memup.episode import Episode
from memup.losses import outcome_sign_hits
from memup.memory import Memory
from memup.stream import same_step_predictions


class _MemoryReadout(nn.Module):
    """A "predictor" that answers with the memory state itself (m_t at the asked steps)."""

    uses_context = False

    def forward(self, memory: torch.Tensor, queries: torch.Tensor,
                context: torch.Tensor | None = None) -> torch.Tensor:
        return memory


def memory_states(memory: Memory, episodes: list[Episode], positions: list[np.ndarray],
                  device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """m_t at ``positions`` of each episode, ``[P, H]`` per episode."""
    memory.eval()
    return same_step_predictions(memory, _MemoryReadout(), episodes, positions,
                                 device=device).predictions


# A few hundred episodes against 128-256 memory features fit the training half perfectly at
# any small penalty, so no one penalty is right for every probe: it is chosen from the grid.
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
FALLBACK_L2 = 1e-3  # when the training half is too small to cross-validate


def choose_l2(x: torch.Tensor, y: torch.Tensor, folds: int = 5,
              grid: tuple[float, ...] = L2_GRID) -> float:
    """The penalty of ``grid`` with the best mean accuracy over ``folds`` interleaved folds
    of the training data alone (ties go to the stronger penalty)."""
    if len(y) < 2 * folds:
        return FALLBACK_L2
    fold = torch.arange(len(y)) % folds

    def accuracy(l2: float) -> float:
        return float(np.mean([fit_logistic(x[fold != k], y[fold != k], x[fold == k],
                                           y[fold == k], l2=l2)["test_accuracy"]
                              for k in range(folds)]))

    return max(sorted(grid, reverse=True), key=accuracy)  # max keeps the first of equals


class LinearProbe:
    """``sigmoid(w·x + b) > 0.5`` on features standardised with the training statistics."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, l2: float,
                 iterations: int = 200) -> None:
        self.l2 = l2
        self.mean, self.std = x_train.mean(0), x_train.std(0) + 1e-6
        xs = (x_train - self.mean) / self.std
        self.weight = torch.zeros(xs.shape[1], requires_grad=True)
        self.bias = torch.zeros(1, requires_grad=True)
        optimiser = torch.optim.LBFGS([self.weight, self.bias], max_iter=iterations,
                                      line_search_fn="strong_wolfe")
        target = y_train.float()

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(
                xs @ self.weight + self.bias, target) + l2 * self.weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """0/1 per row of ``x``."""
        with torch.no_grad():
            return (((x - self.mean) / self.std) @ self.weight + self.bias > 0).long()

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(x) == y).float().mean())

    def scores(self, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
               y_test: torch.Tensor) -> dict[str, float]:
        """Accuracy on both halves, their sizes and the penalty."""
        return {"train_accuracy": self.accuracy(x_train, y_train),
                "test_accuracy": self.accuracy(x_test, y_test),
                "n_train": len(y_train), "n_test": len(y_test), "l2": self.l2}


def fit_logistic(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                 y_test: torch.Tensor, l2: float | None = FALLBACK_L2, iterations: int = 200
                 ) -> dict[str, float]:
    """Fits a :class:`LinearProbe` to 0/1 labels; accuracy on both halves.

    ``l2=None`` chooses the penalty by cross-validation on the training half
    (:func:`choose_l2`); the test half is never seen before it is scored.
    """
    return fit_probe(x_train, y_train, l2, iterations).scores(x_train, y_train, x_test, y_test)


def fit_probe(x_train: torch.Tensor, y_train: torch.Tensor, l2: float | None = FALLBACK_L2,
              iterations: int = 200) -> LinearProbe:
    """A :class:`LinearProbe`; ``l2=None`` chooses its penalty by cross-validation."""
    return LinearProbe(x_train, y_train, choose_l2(x_train, y_train) if l2 is None else l2,
                       iterations)


def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Alternating split of n items into a training and a test half."""
    index = np.arange(n)
    return index[index % 2 == 0], index[index % 2 == 1]


def colour_probe(memory: Memory, episodes: list[Episode], bits: np.ndarray, step: int,
                 swap_steps: int = 0, device: torch.device | str = "cpu"
                 ) -> dict[str, float | None]:
    """Reads ``bits`` (one 0/1 per episode) from m_step of episodes longer than ``step``.

    ``swap_steps > 0`` adds a control of *where* the bit comes from: every held-out episode
    is replayed with its first ``swap_steps`` steps taken from a held-out episode of the
    other bit, and ``swap_follows_swapped`` is the share of the fitted probe's answers that
    follow the swapped-in start (≈ ``test_accuracy`` if the memory holds what it saw there,
    ≈ 1 − ``test_accuracy`` if it reads the bit from the episode's later steps).
    """
    long = [i for i, e in enumerate(episodes) if len(e) > step]
    if len(long) < 4:
        raise ValueError(f"only {len(long)} episodes last beyond step {step}; need 4 or more")
    kept = [episodes[i] for i in long]
    states = torch.cat(memory_states(memory, kept, [np.array([step])] * len(long),
                                     device)).float()
    labels = torch.from_numpy(np.asarray(bits)[long]).long()
    train, test = halves(len(long))
    probe = fit_probe(states[train], labels[train], l2=None)
    result: dict[str, float | None] = {
        "step": step, "episodes": len(long),
        **probe.scores(states[train], labels[train], states[test], labels[test])}
    if swap_steps > 0:
        result.update(_swap_control(memory, kept, labels, test, probe, step, swap_steps, device))
    return result


def _swap_control(memory: Memory, episodes: list[Episode], labels: torch.Tensor,
                  test: np.ndarray, probe: LinearProbe, step: int, swap_steps: int,
                  device: torch.device | str) -> dict[str, float | None]:
    ones, zeros = ([int(i) for i in test if labels[i] == bit] for bit in (1, 0))
    if not ones or not zeros:
        return {"swap_follows_swapped": None, "n_swapped": 0}  # one colour only: no control
    spliced, swapped = [], []
    for i in test:
        others = zeros if labels[i] == 1 else ones
        donor = others[int(i) % len(others)]  # a fixed, spread-out partner of the other bit
        spliced.append(splice(episodes[donor], episodes[int(i)], swap_steps))
        swapped.append(int(labels[donor]))
    states = torch.cat(memory_states(memory, spliced, [np.array([step])] * len(spliced),
                                     device)).float()
    return {"swap_follows_swapped": probe.accuracy(states, torch.tensor(swapped)),
            "n_swapped": len(spliced)}


def splice(head: Episode, tail: Episode, steps: int) -> Episode:
    """``head``'s first ``steps`` steps followed by the rest of ``tail``."""
    def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a[:steps], b[steps:]])

    return Episode(join(head.inputs, tail.inputs), join(head.queries, tail.queries),
                   join(head.labels, tail.labels),
                   {k: join(head.extras[k], v) for k, v in tail.extras.items()})


def window_signs(memory: Memory, predictor: nn.Module, episodes: list[Episode], step: int,
                 horizon: int, threshold: float = 0.5, device: torch.device | str = "cpu"
                 ) -> dict[str, float | None]:
    """Sign accuracy of the predictor as MemUP trains it: m_step (a rollout's last state)
    asked about the pickups (``|label| > threshold``) of steps ``step+1 … step+horizon``."""
    memory.eval()
    predictor.eval()
    long = [e for e in episodes if len(e) > step]
    if not long:
        raise ValueError(f"no episode lasts beyond step {step}")
    states = torch.cat(memory_states(memory, long, [np.array([step])] * len(long), device))
    hits, total = 0, 0
    for state, episode in zip(states, long):
        later = np.arange(step + 1, min(len(episode), step + 1 + horizon))
        picked = later[np.abs(episode.labels[later]) > threshold]
        if len(picked) == 0:
            continue
        with torch.no_grad():
            predicted = predictor(state.expand(len(picked), -1),
                                  torch.from_numpy(episode.queries[picked]).to(device))
        found, n = outcome_sign_hits(predicted.reshape(-1).cpu(),
                                     torch.from_numpy(episode.labels[picked]), threshold)
        hits += found
        total += n
    return {"step": step, "pickups": total, "sign_accuracy": hits / total if total else None}


def pickup_signs(memory: Memory, predictor: nn.Module, episodes: list[Episode],
                 threshold: float = 0.5, device: torch.device | str = "cpu"
                 ) -> dict[str, float]:
    """Sign accuracy on steps with ``|reward| > threshold``: the trained predictor (reading
    m_t) against a memory-less linear predictor on the predictor's own target-frame
    features (fitted on the episodes of one half, scored on the other)."""
    positions = [np.flatnonzero(np.abs(e.labels) > threshold) for e in episodes]
    memory.eval()
    predictor.eval()
    predicted = same_step_predictions(memory, predictor, episodes, positions,
                                      device=device).predictions
    encoder = predictor.query_encoder
    with torch.no_grad():
        features = [encoder(torch.from_numpy(e.queries[p]).to(device)).float().cpu()
                    for e, p in zip(episodes, positions)]
    signs = [torch.from_numpy(e.labels[p] > 0).long() for e, p in zip(episodes, positions)]
    train, test = halves(len(episodes))

    def gather(items: list[torch.Tensor], which: np.ndarray) -> torch.Tensor:
        return torch.cat([items[i] for i in which])

    test_signs = gather(signs, test)
    with_memory = (gather([(p > 0).long() for p in predicted], test) == test_signs)
    fitted = fit_logistic(gather(features, train), gather(signs, train),
                          gather(features, test), test_signs, l2=None)
    return {"pickups_test": len(test_signs),
            "positive_share": float(test_signs.float().mean()),
            "predictor_sign_accuracy": float(with_memory.float().mean()),
            "memoryless_sign_accuracy": fitted["test_accuracy"],
            "memoryless_train_accuracy": fitted["train_accuracy"]}
