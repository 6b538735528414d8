"""Reading episodes back from Redis: fragments reassembled, encoded for the memory, marked.

Both scorer loops need this: scoring reads fresh episodes, the segment server reads marked
ones from the replay window. Everything read is a peer's frame, so each is decoded with
the size limit, checked for order and completeness, and refused with a reason otherwise.
"""

from __future__ import annotations

import numpy as np
import redis

from common import keys
from common.errors import WireError
from common.wire import EpisodeDone, Fragment, Mark, decode
from memup.episode import Episode
from tasks.base import Task

STEP_FIELDS = ("obs", "action", "reward", "log_prob", "value")


class EpisodeUnavailable(Exception):
    """An episode's fragments or mark are not (or no longer) in Redis, or do not add up.

    Attributes:
        reason: the metric label (``missing``, ``incomplete``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_steps(r: redis.Redis, run: str, done: EpisodeDone, max_frame_bytes: int
               ) -> dict[str, np.ndarray]:
    """The episode's steps, ``{"obs": [T, D], "action": [T], ...}``, from its fragments.

    Raises:
        EpisodeUnavailable: fragments expired, missing, out of order or of the wrong length.
        WireError: a fragment frame is malformed, too large or of another schema version.
    """
    frames = r.lrange(keys.fragments_key(run, done.episode), 0, -1)
    return assemble(frames, done.episode, max_frame_bytes, done.length, done.fragments)


def assemble(frames: list[bytes], episode: str, max_frame_bytes: int, length: int,
             fragments: int | None = None) -> dict[str, np.ndarray]:
    """Decodes, orders and concatenates an episode's fragment frames (see :func:`load_steps`).

    Args:
        frames: the fragment list as stored.
        episode: the episode id the fragments must carry.
        max_frame_bytes: the frame size limit.
        length: the number of steps the episode must have.
        fragments: the number of fragments it must have (None: as many as are stored).
    """
    if not frames:
        raise EpisodeUnavailable("missing", f"episode {episode}: no fragments in Redis "
                                 "(expired, evicted or never written)")
    by_index: dict[int, Fragment] = {}
    for frame in frames:
        msg = decode(frame, max_frame_bytes)
        if not isinstance(msg, Fragment) or msg.episode != episode:
            raise EpisodeUnavailable("incomplete", f"episode {episode}: a frame in its "
                                     "fragment list is not one of its fragments")
        # A publish retried after a lost reply can store a fragment twice: keep one.
        by_index[msg.index] = msg
    expected = len(by_index) if fragments is None else fragments
    ordered = [by_index[i] for i in sorted(by_index)]
    if [f.index for f in ordered] != list(range(expected)) or not ordered[-1].final:
        raise EpisodeUnavailable("incomplete", f"episode {episode}: fragments "
                                 f"{sorted(by_index)[:10]} of {expected}")
    try:
        steps = {k: np.concatenate([f.arrays[k] for f in ordered]) for k in STEP_FIELDS}
    except (KeyError, ValueError) as exc:
        raise EpisodeUnavailable("incomplete", f"episode {episode}: fragments disagree "
                                 f"on their fields ({exc})") from exc
    if len(steps["action"]) != length:
        raise EpisodeUnavailable("incomplete", f"episode {episode}: {len(steps['action'])} "
                                 f"steps, expected {length}")
    return steps


def to_episode(steps: dict[str, np.ndarray], task: Task) -> Episode:
    """The memory's view of the steps (inputs, queries, labels).

    Raises:
        EpisodeUnavailable: arrays of the wrong shape, or actions out of range (a peer's
            frames decoded fine but do not describe an episode of this task).
    """
    obs, actions, rewards = steps["obs"], steps["action"], steps["reward"]
    spec = task.spec
    wrong = task.check_obs(obs)
    if wrong or rewards.shape != actions.shape or actions.ndim != 1 or len(obs) != len(actions):
        raise EpisodeUnavailable("incomplete", f"steps of the wrong shape: {wrong or obs.shape}"
                                 f", actions {actions.shape}, rewards {rewards.shape}")
    if actions.size and (actions.min() < 0 or actions.max() >= spec.n_actions):
        raise EpisodeUnavailable("incomplete", f"actions outside 0..{spec.n_actions - 1}")
    inputs, queries, labels = task.encode(obs, actions, rewards)
    return Episode(inputs=inputs, queries=queries, labels=labels)


def load_done(r: redis.Redis, run: str, fields: dict[bytes, bytes], max_frame_bytes: int
              ) -> EpisodeDone:
    """Decodes an episodes-stream entry.

    Raises:
        WireError: the entry is not an :class:`EpisodeDone` frame.
    """
    frame = fields.get(keys.STREAM_FIELD)
    if frame is None:
        raise _NotDone("episodes-stream entry without a 'msg' field")
    msg = decode(frame, max_frame_bytes)
    if not isinstance(msg, EpisodeDone):
        raise _NotDone(f"episodes-stream entry holds a {msg.KIND}, not an episode_done")
    return msg


class _NotDone(WireError):
    reason = "malformed"


def load_marked(r: redis.Redis, run: str, episode: str, task: Task,
                max_frame_bytes: int) -> Episode:
    """A replay-window episode with its mark's targets in ``extras["targets"]``.

    Raises:
        EpisodeUnavailable: the episode was evicted (or its mark is missing).
        WireError: a stored frame is bad.
    """
    pipe = r.pipeline(transaction=True)
    pipe.get(keys.mark_key(run, episode))
    pipe.lrange(keys.fragments_key(run, episode), 0, -1)
    mark_frame, frames = pipe.execute()
    if mark_frame is None or not frames:
        raise EpisodeUnavailable("missing", f"episode {episode} is no longer in the window")
    mark = decode(mark_frame, max_frame_bytes)
    if not isinstance(mark, Mark):
        raise EpisodeUnavailable("incomplete", f"episode {episode}: the mark key holds a "
                                 f"{mark.KIND}")
    steps = assemble(frames, episode, max_frame_bytes, len(mark.surprise))
    ep = to_episode(steps, task)
    ep.extras["targets"] = np.asarray(mark.targets, dtype=np.int64)
    return ep
