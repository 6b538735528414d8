"""On-policy rollouts (whole episodes) → a padded PPO batch, with the memory's features.

In the MemUP modes the policy reads the frozen memory's output m_t, so the memory runs once
over every episode here (without gradient) and PPO trains only the heads on those
features. The PPO-LSTM baseline reads the step inputs themselves and runs its own LSTM,
with truncated BPTT, inside the update.
"""

from __future__ import annotations

import numpy as np
import torch

from common.wire import Rollout
from memup.memory import Memory
from memup.stream import pad_chunk
from rl.policy import FramePolicyInputs
from rl.ppo import RolloutBatch
from tasks.base import Task


def rollout_batch(rollouts: list[Rollout], task: Task, memory: Memory | None,
                  device: torch.device | str = "cpu", chunk: int = 256,
                  with_records: bool = False) -> RolloutBatch:
    """Pads ``rollouts`` to a batch; ``inputs`` are memory features when ``memory`` is given.

    Args:
        rollouts: complete episodes with ``obs``, ``action``, ``reward``, ``log_prob``, ``value``.
        task: the run's task (how steps become memory inputs).
        memory: the policy's frozen memory, or None (the model reads step inputs).
        device: where the batch (and the memory pass) lives.
        chunk: steps per memory call (bounds the memory pass's peak size).
        with_records: the model reads the step records beside the memory features.
    """
    steps_in = [task.encode(r.arrays["obs"], r.arrays["action"], r.arrays["reward"])[0]
                for r in rollouts]
    lengths = [len(x) for x in steps_in]
    t_max = max(lengths)

    def padded(name: str, dtype: np.dtype) -> torch.Tensor:
        return torch.from_numpy(pad_chunk([np.asarray(r.arrays[name], dtype=dtype)
                                           for r in rollouts], 0, t_max)).to(device)

    inputs = torch.from_numpy(pad_chunk(steps_in, 0, t_max)).to(device)
    if memory is not None:
        features = memory_features(memory, inputs, chunk)
        inputs = FramePolicyInputs(features, inputs) if with_records else features
    steps = torch.arange(t_max, device=device)
    mask = steps[None, :] < torch.tensor(lengths, device=device)[:, None]
    n = len(rollouts)
    return RolloutBatch(inputs=inputs, actions=padded("action", np.int64),
                        rewards=padded("reward", np.float32),
                        log_probs=padded("log_prob", np.float32),
                        values=padded("value", np.float32), mask=mask,
                        terminal=torch.ones(n, dtype=torch.bool, device=device),
                        last_values=torch.zeros(n, device=device))


@torch.no_grad()
def memory_features(memory: Memory, inputs: torch.Tensor, chunk: int) -> torch.Tensor:
    """m_t for every step of ``[N, T, D]`` inputs, run from a zero state in chunks."""
    memory.eval()
    state = memory.initial_state(inputs.shape[0], inputs.device)
    outputs = []
    for start in range(0, inputs.shape[1], chunk):
        out, state = memory(inputs[:, start:start + chunk], state)
        outputs.append(out)
    return torch.cat(outputs, dim=1)
