"""Phase II policy heads that read m_t ⊙ W·CNN(frame), start from phase I's frame CNN, and
read phase I's predictor's outcome of every action."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from rl.policy import FramePolicyInputs
from rl.ppo import PPOConfig, PPOTrainer
from tasks.frame_heads import OUTCOME_GAIN_SCALE, FrameHeads
from tasks.frames import TAIL_BYTES, FrameEncoder
from tasks.registry import task_for


def memory_nets(config):  # type: ignore[no-untyped-def]
    return task_for(config).networks(config)


def policy_model(config):  # type: ignore[no-untyped-def]
    return task_for(config).policy(config)

TWO_COLORS = ["task.env=two-colors", "memup.hidden=16", "ppo.frame_features=true",
              "ppo.hidden=32"]


def _records(n: int, seed: int) -> torch.Tensor:
    config = load_config(overrides=["task.env=two-colors"])
    spec = task_for(config)
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n, *spec.spec.obs_shape), dtype=np.uint8)
    return torch.from_numpy(spec.step_inputs(frames, np.full(n, 2), np.zeros(n, np.float32)))


def test_interaction_heads_read_the_product_of_memory_and_frame() -> None:
    heads = policy_model(load_config(overrides=[*TWO_COLORS, "ppo.interaction=true"]))
    assert isinstance(heads, FrameHeads) and heads.question is not None
    records, memory = _records(3, 0), torch.randn(3, 16)
    with torch.no_grad():
        logits, value = heads(memory, records)
        assert logits.shape == (3, 8) and value.shape == (3,)
        heads.question.weight.mul_(-3.0)  # only the product term reads this layer
        changed, _ = heads(memory, records)
    assert not torch.allclose(logits, changed)


def test_the_policy_cnn_starts_from_the_predictors() -> None:
    config = load_config(overrides=[*TWO_COLORS, "ppo.interaction=true",
                                    "ppo.init_encoder=predictor"])
    predictor = memory_nets(config).predictor
    heads = policy_model(config)
    records = _records(4, 1)
    embed = heads.embed_dim
    with torch.no_grad():
        before = heads.encoder(records)[:, :embed]
        heads.adopt_encoder(predictor.query_encoder, predictor.question)
        theirs = predictor.query_encoder(records)[:, :embed]
        ours = heads.encoder(records)[:, :embed]
    assert not torch.allclose(before, theirs)  # two fresh CNNs differ ...
    assert torch.allclose(ours, theirs)  # ... and the adopted one sees what the predictor's does
    assert torch.equal(heads.question.weight, predictor.question.weight[:, :embed])
    assert torch.equal(heads.question.bias, predictor.question.bias)
    # The policy keeps training its own copy: the predictor's weights stay where they were.
    assert heads.encoder.embed[0].weight.data_ptr() != \
        predictor.query_encoder.embed[0].weight.data_ptr()


def test_a_cnn_of_another_size_is_refused() -> None:
    heads = policy_model(load_config(overrides=TWO_COLORS))
    with pytest.raises(ValueError, match="cannot start the policy CNN"):
        heads.adopt_encoder(FrameEncoder((3, 64, 112), 8, "input", "nature"))


@pytest.mark.parametrize("overrides, message", [
    (["ppo.init_encoder=encoder"], "ppo.init_encoder 'encoder': use one of"),
    (["task.env=two-colors", "ppo.init_encoder=memory"], "set ppo.frame_features = true"),
    (["ppo.frame_features=true", "ppo.interaction=true"], "set ppo.frame_features = true"),
    ([*TWO_COLORS, "ppo.mode=lstm", "ppo.init_encoder=predictor"], "frozen or joint mode"),
])
def test_policy_encoder_settings_that_cannot_apply_are_config_errors(
        overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        task_for(load_config(overrides=overrides))


OUTCOMES = [*TWO_COLORS, "ppo.outcome_features=true"]


def test_the_predictor_answers_for_every_action_from_one_frame_encoding() -> None:
    predictor = memory_nets(load_config(overrides=OUTCOMES)).predictor
    records, memory = _records(3, 2), torch.randn(3, 16)
    with torch.no_grad():
        every = predictor.every_action(memory, records)
        one_by_one = []
        for action in range(8):
            asked = records.clone()
            asked[:, -TAIL_BYTES + 1] = action  # the action byte the predictor reads
            one_by_one.append(predictor(memory, asked))
    assert every.shape == (3, 8)
    assert torch.allclose(every, torch.stack(one_by_one, dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="predictor's view"):
        FrameEncoder((3, 64, 112), 8, "input").every_action(records)


def test_outcome_heads_read_a_frozen_predictor_through_a_learned_gain() -> None:
    config = load_config(overrides=OUTCOMES)
    heads = policy_model(config)
    assert isinstance(heads, FrameHeads) and heads.outcome_model is not None
    heads.outcome_model.load_state_dict(memory_nets(config).predictor.state_dict())
    records, memory = _records(4, 3), torch.randn(4, 16)
    trained = PPOTrainer(heads, PPOConfig()).params
    assert heads.outcome_gain is not None and any(p is heads.outcome_gain for p in trained)
    assert not any(p is q for p in trained for q in heads.outcome_model.parameters())
    outcomes = heads.predicted_outcomes(memory, records)
    with torch.no_grad():
        logits, _ = heads(memory, records)
        heads.outcome_gain.fill_(2.0)
        raised, _ = heads(memory, records)
    assert torch.allclose(raised - logits, 2.0 * OUTCOME_GAIN_SCALE * outcomes, atol=1e-4)
    # The outcome model's answers reach the logits through the gain with grad: PPO moves it.
    logits, _ = heads(memory, records)
    logits.sum().backward()
    assert heads.outcome_gain.grad is not None and heads.outcome_gain.grad != 0
    assert all(p.grad is None for p in heads.outcome_model.parameters())


def test_outcomes_computed_once_per_batch_give_the_same_logits_and_are_not_recomputed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(overrides=OUTCOMES)
    heads = policy_model(config)
    assert isinstance(heads, FrameHeads) and heads.outcome_model is not None
    heads.outcome_model.load_state_dict(memory_nets(config).predictor.state_dict())
    with torch.no_grad():
        heads.outcome_gain.fill_(1.0)  # type: ignore[union-attr]
    inputs = FramePolicyInputs(torch.randn(5, 6, 16), _records(30, 4).reshape(5, 6, -1))
    prepared = heads.with_outcomes(inputs, episodes=2)  # three chunks of episodes
    assert prepared.outcomes is not None and prepared.outcomes.shape == (5, 6, 8)
    with torch.no_grad():
        fresh, fresh_values = heads.forward_sequence(inputs)
    calls = []
    monkeypatch.setattr(heads.outcome_model, "every_action",
                        lambda *args: calls.append(args) or torch.zeros(()))
    index = torch.tensor([3, 0])
    with torch.no_grad():
        reused, reused_values = heads.forward_sequence(prepared)
        part, _ = heads.forward_sequence(prepared[index])
    assert not calls  # PPO's epochs and minibatches read the attached predictions
    assert torch.allclose(fresh, reused, atol=1e-5) and torch.allclose(fresh_values, reused_values)
    assert torch.allclose(part, fresh[index], atol=1e-5)
    plain = policy_model(load_config(overrides=TWO_COLORS))
    assert isinstance(plain, FrameHeads) and plain.with_outcomes(inputs) is inputs


@pytest.mark.parametrize("overrides", [
    ["task.env=two-colors", "ppo.outcome_features=true"],
    [*OUTCOMES, "ppo.mode=joint"],
])
def test_outcome_features_without_a_frozen_image_memory_are_config_errors(
        overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match="outcome_features reads phase I"):
        task_for(load_config(overrides=overrides))
