"""Same-step predictions over whole episodes, streamed in chunks with constant memory.

The detector (surprise of every step) and evaluation (prediction at chosen steps) both run
the memory over complete episodes without gradient and ask the predictor about the step
the memory has just read. Streaming keeps peak memory at O(B · chunk · hidden) for any T.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from memup.episode import Episode
from memup.memory import Memory, State


@dataclass
class SameStepResult:
    """Predictions at the requested steps of every episode, plus optional full contexts."""

    predictions: list[torch.Tensor]
    contexts: list[np.ndarray] | None


def pad_chunk(arrays: list[np.ndarray], start: int, end: int) -> np.ndarray:
    """Stacks ``arrays[b][start:end]`` into ``[B, end-start, ...]``, zero-padded past the end."""
    first = arrays[0]
    out = np.zeros((len(arrays), end - start, *first.shape[1:]), dtype=first.dtype)
    for b, a in enumerate(arrays):
        piece = a[start:end]
        out[b, : len(piece)] = piece
    return out


@torch.no_grad()
def same_step_predictions(
    memory: Memory,
    predictor: nn.Module,
    episodes: list[Episode],
    positions: list[np.ndarray] | None = None,
    chunk: int = 64,
    keep_context: bool = False,
    device: torch.device | str = "cpu",
) -> SameStepResult:
    """Runs memory (and the predictor's context LSTM) over each episode from a zero state.

    Args:
        memory: the memory network (put in eval mode by the caller when it matters).
        predictor: the predictor; when it ``uses_context`` its context LSTM runs alongside.
        episodes: the episodes; they are processed side by side, padded.
        positions: per episode, the sorted steps at which to predict ``y_t`` from ``m_t``;
            ``None`` means every step.
        chunk: steps per streamed chunk.
        keep_context: also return each episode's full context ``[T, C]`` (float32).
        device: where to compute.

    Returns:
        Predictions per episode, on CPU (``[P]`` or ``[P, C]``), in the order of positions.
    """
    n = len(episodes)
    lengths = np.array([len(e) for e in episodes])
    wanted = [np.arange(t) if positions is None else np.asarray(p) for t, p in
              zip(lengths, positions if positions is not None else [None] * n)]
    uses_context = getattr(predictor, "uses_context", False)
    state = memory.initial_state(n, device)
    ctx_state = predictor.initial_context_state(n, device) if uses_context else None
    contexts = [np.zeros((t, predictor.context_dim), np.float32) for t in lengths] \
        if keep_context and uses_context else None
    pieces: list[list[torch.Tensor]] = [[] for _ in range(n)]
    inputs = [e.inputs for e in episodes]
    queries = [e.queries for e in episodes]
    for start in range(0, int(lengths.max()), chunk):
        # Every chunk has the full length (the last one zero-padded): oneDNN caches one
        # primitive per input shape, so ragged tail chunks would grow memory run after run.
        end = start + chunk
        x = torch.from_numpy(pad_chunk(inputs, start, end)).to(device)
        out, state = memory(x, state)
        q = torch.from_numpy(pad_chunk(queries, start, end)).to(device)
        ctx = None
        if uses_context:
            ctx, ctx_state = predictor.context(q, ctx_state)
            if contexts is not None:
                for b in range(n):
                    stop = min(end, lengths[b])
                    if stop > start:
                        contexts[b][start:stop] = ctx[b, : stop - start].float().cpu().numpy()
        lane_idx, step_idx = [], []
        for b in range(n):
            w = wanted[b]
            sel = w[(w >= start) & (w < end)] - start
            lane_idx.append(np.full(len(sel), b))
            step_idx.append(sel)
        lanes = torch.from_numpy(np.concatenate(lane_idx)).long().to(device)
        steps = torch.from_numpy(np.concatenate(step_idx)).long().to(device)
        if len(lanes) == 0:
            continue
        pred = predictor(out[lanes, steps], q[lanes, steps],
                         None if ctx is None else ctx[lanes, steps]).float().cpu()
        counts = [len(s) for s in step_idx]
        for b, piece in enumerate(torch.split(pred, counts)):
            if len(piece):
                pieces[b].append(piece)
    predictions = [torch.cat(p) if p else torch.empty(0) for p in pieces]
    return SameStepResult(predictions, contexts)


@torch.no_grad()
def every_step_chunks(
    memory: Memory,
    predictor: nn.Module,
    episodes: list[Episode],
    chunk: int = 64,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[int, torch.Tensor, np.ndarray]]:
    """Same-step predictions of every step, one chunk at a time (nothing kept between).

    For predictors without a context LSTM. Yields ``(start, predictions [n, chunk, ...],
    labels [n, chunk])`` on CPU; rows past an episode's end are padding.
    """
    if getattr(predictor, "uses_context", False):
        raise ValueError("every_step_chunks streams memory-only predictors")
    n = len(episodes)
    t_max = max(len(e) for e in episodes)
    state = memory.initial_state(n, device)
    inputs = [e.inputs for e in episodes]
    queries = [e.queries for e in episodes]
    labels = [e.labels for e in episodes]
    for start in range(0, t_max, chunk):
        end = start + chunk  # full-length chunks: see same_step_predictions
        out, state = memory(torch.from_numpy(pad_chunk(inputs, start, end)).to(device), state)
        q = torch.from_numpy(pad_chunk(queries, start, end)).to(device)
        pred = predictor(out.reshape(n * chunk, -1), q.reshape(n * chunk, *q.shape[2:]))
        yield start, pred.reshape(n, chunk, *pred.shape[1:]).float().cpu(), \
            pad_chunk(labels, start, end)


@torch.no_grad()
def advance(run: Callable[[torch.Tensor, State], tuple[torch.Tensor, State]], state: State,
            arrays: list[np.ndarray], starts: np.ndarray, stops: np.ndarray, chunk: int,
            device: torch.device | str = "cpu") -> State:
    """The state of a recurrent ``run`` after lane b read rows ``[starts[b], stops[b])`` of
    ``arrays[b]`` (lanes side by side), starting from ``state``.

    A no-gradient pass, ``chunk`` steps at a time, every lane in every chunk (the batch keeps
    its shape, so the numbers do not depend on which lanes are still reading); each lane's
    state is taken when it reaches its stop, which must lie a multiple of ``chunk`` after its
    start. ``run`` is the memory (inputs) or a predictor's context LSTM (queries); states
    are ``[layers, B, H]`` tuples.
    """
    starts = np.asarray(starts, dtype=np.int64)
    gaps = np.asarray(stops, dtype=np.int64) - starts
    if (gaps < 0).any() or (gaps % chunk).any():
        raise ValueError(f"each lane must read a multiple of the chunk {chunk} rows forward")
    result = tuple(s.clone() for s in state)
    for at in range(0, int(gaps.max(initial=0)), chunk):
        pieces = [a[s + at : s + at + chunk] for a, s in zip(arrays, starts.tolist())]
        _, state = run(torch.from_numpy(pad_chunk(pieces, 0, chunk)).to(device), state)
        done = torch.from_numpy(np.flatnonzero(gaps == at + chunk)).to(device)
        for r, s in zip(result, state):
            r[:, done] = s[:, done]
    return result  # type: ignore[return-value]
