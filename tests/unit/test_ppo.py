"""Tests for PPO: GAE on padded rows, the policies, soft update, masking and learning to decide."""

from __future__ import annotations

import copy

import pytest
import torch

from rl.policy import LstmPolicy, PolicyHeads, soft_update
from rl.ppo import (
    PPOConfig,
    PPOTrainer,
    RolloutBatch,
    categorical_sample,
    gae,
    log_prob_entropy,
)

torch.set_num_threads(1)


def gae_reference(rewards, values, length, last_value, terminal, gamma, lam):
    """Textbook per-episode GAE over Python floats."""
    advantages = [0.0] * length
    running = 0.0
    for t in reversed(range(length)):
        if t == length - 1:
            next_value = 0.0 if terminal else last_value
            running = 0.0
        else:
            next_value = values[t + 1]
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages


def test_gae_matches_per_episode_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    n, steps, gamma, lam = 9, 7, 0.97, 0.9
    lengths = torch.tensor([7, 1, 3, 7, 5, 2, 6, 4, 7])
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    rewards = torch.randn(n, steps, generator=gen, dtype=torch.float64)
    values = torch.randn(n, steps, generator=gen, dtype=torch.float64)
    last_values = torch.randn(n, generator=gen, dtype=torch.float64)
    terminal = torch.tensor([True, False, True, False, True, False, False, True, False])
    adv, ret = gae(rewards, values, mask, last_values, terminal, gamma, lam)
    for i in range(n):
        length = int(lengths[i])
        expected = gae_reference(rewards[i].tolist(), values[i].tolist(), length,
                                 float(last_values[i]), bool(terminal[i]), gamma, lam)
        torch.testing.assert_close(adv[i, :length], torch.tensor(expected, dtype=torch.float64))
        torch.testing.assert_close(ret[i, :length], adv[i, :length] + values[i, :length])
    assert bool((adv[~mask] == 0).all()) and bool((ret[~mask] == 0).all())
    # Whatever sits on padding is ignored.
    noisy = [torch.where(mask, x, torch.full_like(x, 1e3)) for x in (rewards, values)]
    adv2, ret2 = gae(*noisy, mask, last_values, terminal, gamma, lam)
    torch.testing.assert_close(adv2, adv)
    torch.testing.assert_close(ret2, ret)


def test_soft_update_is_exact() -> None:
    torch.manual_seed(0)
    target, source = nn_pair()
    before = [p.clone() for p in target.state_dict().values()]
    soft_update(target, source, keep=0.9)
    for old, new, src in zip(before, target.state_dict().values(),
                             source.state_dict().values(), strict=True):
        if old.is_floating_point():
            torch.testing.assert_close(new, 0.9 * old + 0.1 * src, rtol=0, atol=1e-7)
        else:
            assert torch.equal(new, src)


def nn_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two differently initialised modules with parameters, float and integer buffers."""
    def make() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5))
    target, source = make(), make()
    source[1].running_mean.normal_()
    source[1].num_batches_tracked.fill_(7)
    return target, source


def test_policy_heads_shapes_and_init() -> None:
    torch.manual_seed(0)
    heads = PolicyHeads(12, 3, hidden=16)
    logits, values = heads.forward_sequence(torch.randn(4, 5, 12), torch.ones(4, 5, dtype=bool))
    assert logits.shape == (4, 5, 3) and values.shape == (4, 5)
    linears = [m for m in heads.policy if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 16, 3]
    assert all(bool((m.bias == 0).all()) for m in heads.modules()
               if isinstance(m, torch.nn.Linear))
    assert logits.abs().max() < 0.2  # near-uniform start


def test_lstm_forward_sequence_equals_stepping() -> None:
    torch.manual_seed(0)
    policy = LstmPolicy(5, 3, embed=8, hidden=12, layers=2, tbptt=16).eval()
    x = torch.randn(4, 9, 5)
    logits, values = policy.forward_sequence(x, torch.ones(4, 9, dtype=torch.bool))
    state = policy.initial_state(4)
    assert state[0].shape == (2, 4, 12)
    with torch.no_grad():
        for t in range(9):
            step_logits, step_value, state = policy.step(x[:, t], state)
            torch.testing.assert_close(step_logits, logits[:, t])
            torch.testing.assert_close(step_value, values[:, t])


@pytest.mark.parametrize(("steps", "tbptt"), [(12, 4), (10, 4), (7, 3)])
def test_lstm_tbptt_cuts_gradients_before_last_chunk(steps: int, tbptt: int) -> None:
    torch.manual_seed(0)
    policy = LstmPolicy(5, 3, embed=8, hidden=12, layers=2, tbptt=tbptt)
    x = torch.randn(3, steps, 5, requires_grad=True)
    logits, values = policy.forward_sequence(x, torch.ones(3, steps, dtype=torch.bool))
    (logits[:, -1].sum() + values[:, -1].sum()).backward()
    last_chunk = (steps - 1) // tbptt * tbptt
    assert bool((x.grad[:, :last_chunk] == 0).all())
    assert bool((x.grad[:, last_chunk:].abs().sum(-1) > 0).all())


def test_categorical_sample_and_log_probs() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 2.0, -1.0]]).expand(4000, 3)
    actions, log_probs = categorical_sample(logits, gen)
    freq = torch.bincount(actions, minlength=3).float() / 4000
    torch.testing.assert_close(freq, torch.softmax(logits[0], -1), atol=0.03, rtol=0)
    expected, entropy = log_prob_entropy(logits, actions)
    torch.testing.assert_close(log_probs, expected)
    p = torch.softmax(logits[0], -1)
    torch.testing.assert_close(entropy[0], -(p * p.log()).sum())


def padded_batch(gen: torch.Generator, n: int = 6, steps: int = 8, dim: int = 5) -> RolloutBatch:
    lengths = torch.randint(2, steps + 1, (n,), generator=gen)
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    return RolloutBatch(
        inputs=torch.randn(n, steps, dim, generator=gen),
        actions=torch.randint(0, 3, (n, steps), generator=gen),
        rewards=torch.randn(n, steps, generator=gen),
        log_probs=-torch.rand(n, steps, generator=gen) - 0.5,
        values=torch.randn(n, steps, generator=gen),
        mask=mask,
        terminal=torch.rand(n, generator=gen) < 0.5,
        last_values=torch.randn(n, generator=gen),
    )


@pytest.mark.parametrize("recurrent", [False, True])
def test_update_ignores_padding(recurrent: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    batch = padded_batch(gen)
    pad = ~batch.mask
    garbage = copy.deepcopy(batch)
    garbage.inputs[pad] = 50.0
    garbage.actions[pad] = -7
    garbage.rewards[pad] = 1e3
    garbage.log_probs[pad] = 9.0
    garbage.values[pad] = -1e3
    torch.manual_seed(0)
    model = (LstmPolicy(5, 3, embed=8, hidden=12, dropout=0.0, tbptt=3) if recurrent
             else PolicyHeads(5, 3, hidden=16))
    config = PPOConfig(minibatch_episodes=4, epochs=2, lr=1e-3, value_clip=0.5)
    results = []
    for b in (batch, garbage):
        clone = copy.deepcopy(model)
        torch.manual_seed(123)  # same minibatch shuffles
        stats = PPOTrainer(clone, config).update(b)
        results.append((stats, clone.state_dict()))
    (stats_a, params_a), (stats_b, params_b) = results
    assert stats_a["updates"] == 4
    for key in stats_a:
        assert stats_a[key] == pytest.approx(stats_b[key], rel=1e-6, abs=1e-7), key
    for key in params_a:
        torch.testing.assert_close(params_a[key], params_b[key])


def test_trainer_state_dict_round_trip() -> None:
    gen = torch.Generator().manual_seed(2)
    model = PolicyHeads(5, 3, hidden=16)
    trainer = PPOTrainer(model, PPOConfig(epochs=1))
    trainer.update(padded_batch(gen))
    other = PPOTrainer(model, PPOConfig(epochs=1))
    other.load_state_dict(trainer.state_dict())
    assert other.updates == trainer.updates == 1
    assert other.optimizer.state_dict()["state"].keys() == trainer.optimizer.state_dict()[
        "state"].keys()


def test_target_kl_stops_after_the_first_epoch() -> None:
    gen = torch.Generator().manual_seed(3)
    batch = padded_batch(gen, n=8)
    config = PPOConfig(lr=1e-2, epochs=5, minibatch_episodes=4, target_kl=1e-9)
    stats = PPOTrainer(PolicyHeads(5, 3, hidden=16), config).update(batch)
    assert stats["updates"] == 2 and stats["approx_kl"] > 1.5e-9


# ------------------------------------------------------------------ learning a decision ----

class DecisionTask:
    """The clue (0/1) is shown as a fixed 8-dim vector at ``clue_step``, noise elsewhere.

    The final step is the decision: reward +1 if the action equals the clue, else −1; all
    other steps give 0. Inputs are ``[signal(8), noise(4), is_decision(1)]``.
    """

    def __init__(self, steps: int, clue_step: int, gen: torch.Generator) -> None:
        self.steps = steps
        self.clue_step = clue_step
        self.gen = gen
        self.clue_vectors = torch.randn(2, 8, generator=gen)
        self.dim = 13

    def episodes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        clues = torch.randint(0, 2, (n,), generator=self.gen)
        x = torch.randn(n, self.steps, self.dim, generator=self.gen)
        x[:, :, -1] = 0.0
        x[:, -1, -1] = 1.0
        x[:, self.clue_step, :8] = self.clue_vectors[clues]
        return x, clues

    def rollout(self, model: torch.nn.Module, n: int) -> RolloutBatch:
        """Observations do not depend on actions, so the whole rollout is one forward pass."""
        x, clues = self.episodes(n)
        mask = torch.ones(n, self.steps, dtype=torch.bool)
        with torch.no_grad():
            logits, values = model.forward_sequence(x, mask)
        actions, log_probs = categorical_sample(logits, self.gen)
        rewards = torch.zeros(n, self.steps)
        rewards[:, -1] = (actions[:, -1] == clues).float() * 2.0 - 1.0
        return RolloutBatch(x, actions, rewards, log_probs, values, mask,
                            terminal=torch.ones(n, dtype=torch.bool), last_values=torch.zeros(n))

    def greedy_success(self, model: torch.nn.Module, n: int = 1000) -> float:
        x, clues = self.episodes(n)
        with torch.no_grad():
            logits, _ = model.forward_sequence(x, torch.ones(n, self.steps, dtype=torch.bool))
        return (logits[:, -1].argmax(-1) == clues).float().mean().item()


def train_until(model: torch.nn.Module, task: DecisionTask, config: PPOConfig,
                episodes: int, target: float, max_iterations: int) -> list[float]:
    """PPO on fresh rollouts until greedy success reaches ``target``; returns the curve."""
    trainer = PPOTrainer(model, config)
    curve = [task.greedy_success(model)]
    for _ in range(max_iterations):
        stats = trainer.update(task.rollout(model, episodes))
        assert all(stats[k] == stats[k] for k in ("policy_loss", "value_loss", "approx_kl"))
        curve.append(task.greedy_success(model))
        if curve[-1] >= target:
            break
    return curve


def test_ppo_learns_decision_from_features() -> None:
    torch.manual_seed(0)
    task = DecisionTask(steps=20, clue_step=19, gen=torch.Generator().manual_seed(0))
    model = PolicyHeads(task.dim, 2, hidden=64)
    config = PPOConfig(lr=1e-3, minibatch_episodes=16, epochs=4)
    curve = train_until(model, task, config, episodes=64, target=0.95, max_iterations=40)
    assert abs(curve[0] - 0.5) < 0.25, curve
    assert curve[-1] >= 0.95, curve


def test_ppo_lstm_learns_to_remember_the_clue() -> None:
    torch.manual_seed(0)
    task = DecisionTask(steps=6, clue_step=0, gen=torch.Generator().manual_seed(1))
    model = LstmPolicy(task.dim, 2, embed=32, hidden=32, layers=2, dropout=0.0, tbptt=6).eval()
    config = PPOConfig(lr=2e-3, minibatch_episodes=16, epochs=4)
    curve = train_until(model, task, config, episodes=64, target=0.9, max_iterations=80)
    assert abs(curve[0] - 0.5) < 0.25, curve
    assert curve[-1] >= 0.9, curve
