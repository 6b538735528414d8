"""Tests for the recurrent memory: reset masking, state helpers and chrono initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from memup.memory import (
    Memory,
    TokenEncoder,
    VectorEncoder,
    chrono_init,
    detach_state,
    mask_state,
)

torch.set_num_threads(1)


def make_memory(kind: str, layers: int) -> Memory:
    encoder = VectorEncoder(3, 3, hidden=8) if kind == "vector" else TokenEncoder(10, 8)
    return Memory(encoder, hidden=12, layers=layers, dropout=0.1).eval()


def make_inputs(kind: str, batch: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "vector":
        return torch.randn(batch, steps, 6, generator=gen)
    return torch.randint(0, 10, (batch, steps), generator=gen)


def random_state(memory: Memory, batch: int, gen: torch.Generator):
    shape = (memory.layers, batch, memory.hidden)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


def step_by_step(memory: Memory, inputs: torch.Tensor, state, resets: torch.Tensor):
    """Reference: one LSTM call per step, zeroing a lane's (h, c) right before its reset."""
    h, c = state
    outputs = []
    for t in range(inputs.shape[1]):
        keep = (~resets[:, t]).float().view(1, -1, 1)
        h, c = h * keep, c * keep
        out, (h, c) = memory.lstm(memory.encoder(inputs[:, t : t + 1]), (h, c))
        outputs.append(out)
    return torch.cat(outputs, dim=1), (h, c)


@pytest.mark.parametrize("kind", ["vector", "token"])
@pytest.mark.parametrize("layers", [1, 2])
def test_resets_equal_step_by_step_loop(kind: str, layers: int) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(layers * 10 + len(kind))
    memory = make_memory(kind, layers)
    batch, steps = 4, 13
    with torch.no_grad():
        for trial in range(6):
            inputs = make_inputs(kind, batch, steps, gen)
            state = random_state(memory, batch, gen)
            resets = torch.rand(batch, steps, generator=gen) < 0.2
            if trial == 0:
                resets[:, 0] = True  # every lane starts a new episode at step 0
            out, (h, c) = memory(inputs, state, resets)
            ref_out, (ref_h, ref_c) = step_by_step(memory, inputs, state, resets)
            assert out.shape == (batch, steps, memory.hidden)
            torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(h, ref_h, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(c, ref_c, rtol=1e-5, atol=1e-5)
            if resets.any():
                # The resets matter: ignoring them gives a different result.
                plain, _ = memory(inputs, state)
                assert not torch.allclose(plain, ref_out, atol=1e-4)


@pytest.mark.parametrize("kind", ["vector", "token"])
def test_without_resets_equals_plain_call(kind: str) -> None:
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(5)
    memory = make_memory(kind, 2)
    inputs = make_inputs(kind, 3, 9, gen)
    state = random_state(memory, 3, gen)
    with torch.no_grad():
        ref_out, (ref_h, ref_c) = memory.lstm(memory.encoder(inputs), state)
        for resets in (None, torch.zeros(3, 9, dtype=torch.bool)):
            out, (h, c) = memory(inputs, state, resets)
            torch.testing.assert_close(out, ref_out)
            torch.testing.assert_close(h, ref_h)
            torch.testing.assert_close(c, ref_c)


def test_resets_keep_gradients_flowing() -> None:
    torch.manual_seed(2)
    memory = make_memory("vector", 1).train()
    inputs = torch.randn(2, 6, 6)
    resets = torch.zeros(2, 6, dtype=torch.bool)
    resets[0, 3] = True
    out, _ = memory(inputs, memory.initial_state(2), resets)
    out.sum().backward()
    assert all(p.grad is not None for p in memory.lstm.parameters())


def test_initial_state_shape() -> None:
    memory = make_memory("token", 2)
    h, c = memory.initial_state(5)
    assert h.shape == c.shape == (2, 5, 12)
    assert not h.any() and not c.any()
    assert h.data_ptr() != c.data_ptr()
    assert memory.out_dim == 12


def test_mask_state() -> None:
    h = torch.randn(2, 4, 3)
    c = torch.randn(2, 4, 3)
    keep = torch.tensor([True, False, True, False])
    mh, mc = mask_state((h, c), keep)
    for masked, orig in ((mh, h), (mc, c)):
        assert masked.shape == orig.shape
        torch.testing.assert_close(masked[:, keep], orig[:, keep])
        assert not masked[:, ~keep].any()


def test_detach_state() -> None:
    h = torch.randn(1, 2, 3, requires_grad=True)
    c = torch.randn(1, 2, 3, requires_grad=True)
    dh, dc = detach_state((h * 2, c * 3))
    assert not dh.requires_grad and not dc.requires_grad
    assert dh.grad_fn is None and dc.grad_fn is None
    torch.testing.assert_close(dh, h.detach() * 2)
    torch.testing.assert_close(dc, c.detach() * 3)


@pytest.mark.parametrize("horizon", [3, 50, 1000])
@pytest.mark.parametrize("layers", [1, 2])
def test_chrono_init_bias_ranges(horizon: int, layers: int) -> None:
    torch.manual_seed(horizon)
    hidden = 64
    memory = Memory(VectorEncoder(3, 3, hidden=8), hidden, layers=layers,
                    chrono_horizon=horizon)
    for layer in range(layers):
        bias = (getattr(memory.lstm, f"bias_ih_l{layer}")
                + getattr(memory.lstm, f"bias_hh_l{layer}")).detach()
        input_gate, forget = bias[:hidden], bias[hidden : 2 * hidden]
        assert forget.min() >= 0.0
        assert forget.max() <= math.log(horizon) + 1e-6
        torch.testing.assert_close(input_gate, -forget)
        assert forget.std() > 0  # spread out, not a single constant
        # Cell and output gate biases start at zero.
        assert not bias[2 * hidden :].any()


def test_chrono_init_on_plain_lstm_and_off_by_default() -> None:
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(4, 16)
    chrono_init(lstm, 100)
    forget = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()[16:32]
    assert 0.0 <= forget.min() and forget.max() <= math.log(100)
    # Without a horizon, PyTorch's default init is kept (biases are not input = -forget).
    plain = Memory(VectorEncoder(3, 3, hidden=8), 16)
    b = (plain.lstm.bias_ih_l0 + plain.lstm.bias_hh_l0).detach()
    assert not torch.allclose(b[:16], -b[16:32])
