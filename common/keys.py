"""Every name the roles share: Redis keys, streams and groups, consumer and endpoint names.

A renamed stream is a one-line diff here. All Redis keys of a run live under
``memup:{run}:`` (:func:`prefix`), so a run can be listed, trimmed or deleted as a whole.

Identifiers (run, episode, actor, weights name, replica) are validated by
:func:`validate_id`: 1 to 128 characters from ``[A-Za-z0-9._-]``, starting with a letter
or a digit. That excludes ``:`` (the key separator, so ``run="a:frag"`` cannot collide
with another key), whitespace and control characters (they break logs and the CLI) and
the glob characters ``* ? [ ] \\`` (keys are discovered with ``SCAN MATCH`` patterns).
"""

from __future__ import annotations

import re

ROOT = "memup"
"""First component of every Redis key."""
METRIC_PREFIX = "memup"
"""Every Prometheus metric is named ``memup_<role>_<name>`` (see :func:`metric_name`)."""
SCORERS_GROUP = "scorers"
"""Consumer group on the episodes stream that scores completed episodes."""
PPO_GROUP = "ppo"
"""Consumer group on the episodes stream that serves on-policy episodes for PPO."""

MAX_ID_LENGTH = 128
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_LENGTH - 1}}}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def validate_id(value: object, what: str = "id") -> str:
    """Checks that ``value`` may be used inside a key, a consumer name or an endpoint name.

    Args:
        value: the identifier.
        what: what it names, for the error message (``"run id"``, ``"episode id"``).

    Returns:
        ``value``, unchanged.

    Raises:
        ValueError: ``value`` is not a string of 1 to 128 characters from ``[A-Za-z0-9._-]``
            starting with a letter or digit.
    """
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        shown = repr(value)[:60]
        raise ValueError(
            f"invalid {what} {shown}: use 1 to {MAX_ID_LENGTH} characters from "
            "[A-Za-z0-9._-], starting with a letter or digit"
        )
    return value


def validate_role(role: object) -> str:
    """Checks a role name (``actor``, ``scorer``, ``learner``), which also names metrics.

    Raises:
        ValueError: ``role`` is not 1 to 32 characters from ``[a-z0-9_]`` starting with a
            letter.
    """
    if not isinstance(role, str) or _ROLE.fullmatch(role) is None:
        raise ValueError(f"invalid role {repr(role)[:60]}: use [a-z][a-z0-9_]*, e.g. 'scorer'")
    return role


def prefix(run: str) -> str:
    """The prefix of every Redis key of ``run``: ``memup:{run}:``.

    Raises:
        ValueError: ``run`` is not a valid id (see :func:`validate_id`).
    """
    return f"{ROOT}:{validate_id(run, 'run id')}:"


def fragments_key(run: str, episode: str) -> str:
    """List of the encoded fragments of one episode, in order (actors ``RPUSH``)."""
    return f"{prefix(run)}frag:{validate_id(episode, 'episode id')}"


def episodes_stream(run: str) -> str:
    """Stream with one entry per completed episode, read by the scorers and ppo groups."""
    return f"{prefix(run)}episodes"


def mark_key(run: str, episode: str) -> str:
    """The scorer's mark of one episode (surprise and targets)."""
    return f"{prefix(run)}mark:{validate_id(episode, 'episode id')}"


def replay_key(run: str) -> str:
    """Sorted set of the scored episode ids in the replay window."""
    return f"{prefix(run)}replay"


def weights_key(run: str, name: str) -> str:
    """Hash with the newest published weights ``name`` (version, sha256, bytes)."""
    return f"{prefix(run)}weights:{validate_id(name, 'weights name')}"


def dead_letter_stream(run: str) -> str:
    """Stream of rejected frames, with the reason, for inspection."""
    return f"{prefix(run)}dead_letter"


def consumer_name(role: str, replica: int | str) -> str:
    """The stable name of one replica of a role, e.g. ``scorer-1``.

    Used as the consumer name in stream groups (a restarted replica drains its own
    pending entries) and in endpoint keys.

    Args:
        role: ``actor``, ``scorer`` or ``learner``.
        replica: the replica's ordinal (``int`` >= 0) or a stable id (e.g. a pod name).

    Raises:
        ValueError: invalid role or replica.
    """
    if isinstance(replica, bool) or (isinstance(replica, int) and replica < 0):
        raise ValueError(f"invalid replica {replica!r}: use an ordinal >= 0 or an id")
    rid = str(replica) if isinstance(replica, int) else validate_id(replica, "replica")
    return f"{validate_role(role)}-{rid}"


def scorer_endpoint_key(run: str, replica: int | str) -> str:
    """Key (with a heartbeat TTL) holding the segment-server endpoint of scorer ``replica``.

    The value is the ZeroMQ endpoint the scorer advertises, ``tcp://host:port``; learners
    find every key with :func:`scorer_endpoints_pattern` and connect to each.
    """
    return f"{prefix(run)}endpoint:{consumer_name('scorer', replica)}"


def scorer_endpoints_pattern(run: str) -> str:
    """``SCAN MATCH`` pattern of every :func:`scorer_endpoint_key` of ``run``."""
    return f"{prefix(run)}endpoint:scorer-*"


def metric_name(role: str, name: str) -> str:
    """Prometheus metric name ``memup_<role>_<name>``, e.g. ``memup_scorer_frames_total``.

    Raises:
        ValueError: invalid role, or ``name`` is not ``[a-z][a-z0-9_]*``.
    """
    if not isinstance(name, str) or re.fullmatch(r"[a-z][a-z0-9_]*", name) is None:
        raise ValueError(f"invalid metric name {repr(name)[:60]}: use [a-z][a-z0-9_]*")
    return f"{METRIC_PREFIX}_{validate_role(role)}_{name}"


def status_key(run: str, consumer: str) -> str:
    """Hash (with a TTL) of one replica's live numbers, for ``memup up``'s status view."""
    return f"{prefix(run)}status:{consumer}"


def status_pattern(run: str) -> str:
    """``SCAN MATCH`` pattern of every :func:`status_key` of ``run``."""
    return f"{prefix(run)}status:*"


def outcomes_key(run: str) -> str:
    """Capped list of the detector's final-step outcomes on fresh episodes (1 right, 0 wrong).

    Scorers push, the learner reads it to know when the memory is good enough (phase I end).
    """
    return f"{prefix(run)}outcomes"


def control_key(run: str) -> str:
    """Hash of run-wide state only the learner writes: ``phase`` (1, 2), ``trained_steps``
    and ``done`` (1 at the end). Actors may read it, never write it."""
    return f"{prefix(run)}control"


#: The one field of an episodes-stream entry: the encoded ``EpisodeDone`` frame.
STREAM_FIELD = b"msg"

#: Fields of :func:`control_key`'s hash.
CONTROL_PHASE = "phase"
CONTROL_TRAINED_STEPS = "trained_steps"
CONTROL_DONE = "done"
CONTROL_FIELDS = (CONTROL_PHASE, CONTROL_TRAINED_STEPS, CONTROL_DONE)


def env_steps_key(run: str) -> str:
    """Counter of the env steps every actor of the run has published (actors ``INCRBY`` it
    with each finished episode; the budget and phase I's rate limit read it)."""
    return f"{prefix(run)}env_steps"
