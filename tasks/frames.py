"""Image steps as one uint8 record each, and the CNN encoders that read them.

An image task's step (e.g. Two-Colors') is an RGB frame plus the previous action and
reward (what the memory reads) and the action taken (what the predictor is asked about).
Everything downstream of an actor — wire, Redis, the scorer's window, lane slices,
batches — handles a step as one row of an array, so a step travels as one record::

    [ frame: C*H*W bytes (CHW) | prev_action: 1 byte | action: 1 byte | prev_reward: 4 bytes ]

``prev_action`` and ``action`` are 255 where unknown (an episode's first step; the actor's
current step). ``prev_reward`` is float32, little-endian. The memory's encoder and the
predictor's query encoder read the same record, so an episode's inputs and queries are one
array: a 1,050-step episode costs 22.6 MB once, not twice, and a uint8 record is 4× smaller
than the same step as float32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from memup.memory import Memory
from memup.networks import TaskNets
from memup.predictor import QuestionPredictor

NO_ACTION = 255
TAIL_BYTES = 6  # prev_action, action, prev_reward (float32)


def record_width(frame_shape: tuple[int, ...]) -> int:
    """Bytes of one step record for frames of ``frame_shape``."""
    return int(np.prod(frame_shape)) + TAIL_BYTES


def encode_frame_steps(frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                       starts: np.ndarray | None = None, outcome_steps: int = 1,
                       outcome_skip: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records of concatenated episodes; ``starts`` are the rows where episodes begin.

    Args:
        frames: ``[S, C, H, W]`` uint8 frames seen before each action.
        actions: ``[S]`` actions taken.
        rewards: ``[S]`` rewards received for them.
        starts: first row of every episode (default: one episode starting at 0).
        outcome_steps: the label of step k sums the rewards of steps k … k+n-1 of its
            episode. A Two-Colors item is picked up at the player's position, below the
            view: the frame of the pickup step rarely shows it, the frames a few steps
            before do (the authors' data code sums the next 5 rewards the same way).
        outcome_skip: the sum starts ``j`` steps later, at k+j: the label of step k then
            belongs to a frame that still shows what the agent walks into (measured on
            Two-Colors: the item's colour is read from frame p−1…p−5 of a pickup at p
            with 0.84–0.87 accuracy, from frame p with 0.76; docs/results.md §9).

    Returns:
        inputs and queries (the same ``[S, C*H*W + 6]`` uint8 array) and labels ``[S]``
        float32.
    """
    frames = np.asarray(frames)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=np.float32)
    if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != len(actions) \
            or rewards.shape != actions.shape:
        raise ValueError(f"shape mismatch: frames {frames.dtype} {frames.shape}, actions "
                         f"{actions.shape}, rewards {rewards.shape}")
    n = len(frames)
    prev_actions = np.full(n, NO_ACTION, dtype=np.int64)
    prev_actions[1:] = actions[:-1]
    prev_rewards = np.zeros(n, dtype=np.float32)
    prev_rewards[1:] = rewards[:-1]
    first = np.array([0]) if starts is None else np.asarray(starts)
    prev_actions[first] = NO_ACTION
    prev_rewards[first] = 0.0
    records = _records(frames, prev_actions, prev_rewards)
    records[:, -TAIL_BYTES + 1] = actions
    return records, records, forward_sums(rewards, first, outcome_steps, outcome_skip)


def forward_sums(rewards: np.ndarray, starts: np.ndarray, steps: int, skip: int = 0
                 ) -> np.ndarray:
    """``out[k] = rewards[k+skip] + … + rewards[k+skip+steps-1]``, never past the end of k's
    episode (0 where the window starts beyond it)."""
    if steps == 1 and skip == 0:
        return rewards
    ends = np.append(np.asarray(starts)[1:], len(rewards))
    out = np.empty_like(rewards)
    for start, end in zip(starts, ends):
        cumulative = np.concatenate([[0.0], np.cumsum(rewards[start:end], dtype=np.float64)])
        first = np.minimum(np.arange(end - start) + skip, end - start)
        last = np.minimum(first + steps, end - start)
        out[start:end] = cumulative[last] - cumulative[first]
    return out


def frame_step_inputs(frames: np.ndarray, prev_actions: np.ndarray,
                      prev_rewards: np.ndarray) -> np.ndarray:
    """Records of one step of B envs; ``prev_actions`` is -1 where an episode starts.

    Row b equals the row :func:`encode_frame_steps` gives that step, except that the action
    byte is unknown (255): the memory never reads it.
    """
    started = np.asarray(prev_actions) >= 0
    prev = np.where(started, prev_actions, NO_ACTION)
    return _records(np.asarray(frames), prev, np.where(started, prev_rewards, 0.0))


def _records(frames: np.ndarray, prev_actions: np.ndarray, prev_rewards: np.ndarray
             ) -> np.ndarray:
    n = len(frames)
    flat = frames.reshape(n, -1)
    records = np.empty((n, flat.shape[1] + TAIL_BYTES), dtype=np.uint8)
    records[:, : flat.shape[1]] = flat
    records[:, -TAIL_BYTES] = prev_actions
    records[:, -TAIL_BYTES + 1] = NO_ACTION
    records[:, -4:] = np.asarray(prev_rewards, dtype="<f4").view(np.uint8).reshape(n, 4)
    return records


CNN_SIZES = {
    # channels of the three convolutions, width of the embedding
    "small": ((16, 32, 32), 256),  # CPU: ~2.5 M multiply-adds per 64x112 frame
    "nature": ((32, 64, 64), 512),  # memup-spec E.9 (Nature-DQN): ~7.6 M, for a GPU
}
THUMBNAIL_POOL = 4
"""A reconstructed thumbnail is the frame average-pooled 4 × 4 (64 × 112 → 16 × 28)."""


def random_shift(frames: torch.Tensor, pad: int) -> torch.Tensor:
    """Each frame of ``[N, C, H, W]`` moved by its own random offset of up to ``pad`` pixels
    each way, the border repeated (edge padding, then a random crop of the original size).

    Why: a CNN trained on the few hundred pickup frames a replay holds can tell them apart by
    their exact pixels; moved frames keep what matters (the colours) and blur the identity.
    """
    if pad <= 0:
        return frames
    n, _, height, width = frames.shape
    padded = nn.functional.pad(frames, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=frames.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=frames.device)
    rows = torch.arange(height, device=frames.device)[None] + dy  # [N, H]
    cols = torch.arange(width, device=frames.device)[None] + dx  # [N, W]
    picked = padded[torch.arange(n, device=frames.device)[:, None, None], :,
                    rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return picked.permute(0, 3, 1, 2)


class FrameEncoder(nn.Module):
    """Reads step records: CNN(frame) ⊕ one-hot of an action (⊕ the previous reward).

    ``read="input"`` is the memory's view (previous action and reward), ``read="query"``
    the predictor's (the action taken at the target step). The CNN is the Nature-DQN shape
    (8×8 stride 4, 4×4 stride 2, 3×3 stride 1, then a linear embedding), at the widths of
    ``size`` (see :data:`CNN_SIZES`).

    With ``reconstruct=True`` it also holds a linear decoder from the embedding to a
    :data:`THUMBNAIL_POOL`-times smaller thumbnail of the frame, for
    :meth:`reconstruction_loss`. With ``shift > 0`` the frames are moved by up to that many
    pixels (:func:`random_shift`) in train mode only.
    """

    def __init__(self, frame_shape: tuple[int, int, int], n_actions: int,
                 read: str = "input", size: str = "small", reconstruct: bool = False,
                 shift: int = 0) -> None:
        super().__init__()
        if read not in ("input", "query"):
            raise ValueError(f"read must be 'input' or 'query', got {read!r}")
        if size not in CNN_SIZES:
            raise ValueError(f"CNN size {size!r}: choose one of {sorted(CNN_SIZES)}")
        (c1, c2, c3), embed = CNN_SIZES[size]
        self.frame_shape = tuple(frame_shape)
        self.frame_bytes = int(np.prod(frame_shape))
        self.n_actions = n_actions
        self.read = read
        self.shift = shift
        self.cnn = nn.Sequential(
            nn.Conv2d(frame_shape[0], c1, 8, stride=4), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *frame_shape)).shape[1]
        self.embed = nn.Sequential(nn.Linear(flat, embed), nn.ReLU())
        self.out_dim = embed + n_actions + (1 if read == "input" else 0)
        channels, height, width = frame_shape
        self.thumbnail_shape = (channels, height // THUMBNAIL_POOL, width // THUMBNAIL_POOL)
        self.decoder = (nn.Linear(embed, int(np.prod(self.thumbnail_shape)))
                        if reconstruct else None)

    def _frames(self, flat: torch.Tensor) -> torch.Tensor:
        """``[N, record_width]`` uint8 → ``[N, C, H, W]`` float32 in [0, 1]."""
        return flat[:, : self.frame_bytes].reshape(-1, *self.frame_shape).float() / 255.0

    def _embedding(self, flat: torch.Tensor) -> torch.Tensor:
        """``[N, record_width]`` uint8 → ``[N, embed]``: the CNN embedding of the frames
        (moved at random in train mode when ``shift`` is set)."""
        frames = self._frames(flat)
        if self.training:
            frames = random_shift(frames, self.shift)
        return self.embed(self.cnn(frames))

    def reconstruction_loss(self, records: torch.Tensor, count: int) -> torch.Tensor:
        """Squared error of the thumbnails decoded from the embeddings of ``count`` random
        rows of ``records`` (``[..., record_width]``), against the frames' own thumbnails.

        Why: in Two-Colors the pickup's sign is the XOR of two image features (the pillar's
        colour, the item's look) that no memory-less signal teaches; trained by the sign
        alone neither CNN starts to see its colour and the predictor sits at 50 %. Asking
        the embedding to keep a coarse picture of the frame makes both colours present
        from the start (docs/results.md §9).

        Raises:
            ValueError: the encoder was built without a decoder.
        """
        if self.decoder is None:
            raise ValueError("this FrameEncoder has no decoder: build it with reconstruct=True")
        flat = records.reshape(-1, records.shape[-1])
        rows = torch.randint(len(flat), (min(count, len(flat)),), device=flat.device)
        frames = self._frames(flat[rows])
        decoded = self.decoder(self.embed(self.cnn(frames))).view(-1, *self.thumbnail_shape)
        return nn.functional.mse_loss(decoded, nn.functional.avg_pool2d(frames, THUMBNAIL_POOL))

    def every_action(self, records: torch.Tensor) -> torch.Tensor:
        """Query view of each action: ``[..., record_width]`` → ``[..., A, out_dim]``, the
        frame's embedding (one CNN pass) beside every action's one-hot.

        Raises:
            ValueError: this is the memory's view (``read="input"``), which has no action
                taken to vary.
        """
        if self.read != "query":
            raise ValueError("every_action is the predictor's view: build it with read='query'")
        lead = records.shape[:-1]
        flat = records.reshape(-1, records.shape[-1])
        embedded = self._embedding(flat)
        n, a = len(flat), self.n_actions
        actions = torch.eye(a, device=flat.device).expand(n, a, a)
        out = torch.cat([embedded[:, None].expand(n, a, embedded.shape[-1]), actions], dim=-1)
        return out.reshape(*lead, a, self.out_dim)

    def forward(self, records: torch.Tensor) -> torch.Tensor:
        """``[..., record_width]`` uint8 → ``[..., out_dim]`` float32."""
        lead = records.shape[:-1]
        flat = records.reshape(-1, records.shape[-1])
        parts = [self._embedding(flat)]
        column = self.frame_bytes + (0 if self.read == "input" else 1)
        action = flat[:, column].long().clamp(max=self.n_actions)  # 255 (none) → all zeros
        parts.append(nn.functional.one_hot(action, self.n_actions + 1)[:, :-1].float())
        if self.read == "input":
            # Copied into a fresh 1-D buffer: a float32 view needs an aligned offset and stride.
            parts.append(flat[:, -4:].reshape(-1).clone().view(torch.float32)[:, None])
        return torch.cat(parts, dim=-1).reshape(*lead, self.out_dim)


def frame_nets(hidden: int, frame_shape: tuple[int, int, int], n_actions: int,
               cnn: str = "small", chrono_horizon: int | None = None, interaction: bool = True,
               reconstruct: bool = False, query_shift: int = 0,
               predictor_dropout: float = 0.0) -> TaskNets:
    """Image tasks: CNN(frame) ⊕ prev_action ⊕ prev_reward → LSTM; predictor on the target
    frame's own CNN embedding and action → reward (memup-spec E.9, sizes per ``cnn``).

    The predictor has a CNN of its own (not the memory's, detached): what the outcome
    depends on must be read off the target frame whatever the memory's encoder learns to
    keep. ``reconstruct`` gives both CNNs a thumbnail decoder
    (:meth:`memup.networks.TaskNets.reconstruction_loss`); ``query_shift`` and
    ``predictor_dropout`` regularise the predictor in train mode (its target frames moved by
    up to that many pixels; its head's inputs dropped at that rate).
    """
    memory = Memory(FrameEncoder(frame_shape, n_actions, "input", cnn, reconstruct), hidden,
                    chrono_horizon=chrono_horizon)
    predictor = frame_predictor(hidden, frame_shape, n_actions, cnn, interaction, reconstruct,
                                query_shift, predictor_dropout)
    return TaskNets(memory, predictor, "regression")


def frame_predictor(hidden: int, frame_shape: tuple[int, int, int], n_actions: int,
                    cnn: str, interaction: bool, reconstruct: bool, query_shift: int = 0,
                    dropout: float = 0.0) -> QuestionPredictor:
    """The predictor of :func:`frame_nets` alone: m_t of width ``hidden`` and the target
    frame's own CNN embedding and action → reward."""
    return QuestionPredictor(
        hidden, FrameEncoder(frame_shape, n_actions, "query", cnn, reconstruct, query_shift),
        hidden=256, interaction=interaction, dropout=dropout)
