"""Every Prometheus metric of every role, in one place, and the HTTP exporter.

Names are ``memup_<role>_<what>_<unit>`` (:func:`common.keys.metric_name`) in base units
(seconds, bytes, ratios 0–1); counters end in ``_total``. Labels are low-cardinality
constants (an outcome, a reason, a kind, a stream name): never an episode, segment or seed
id, which would create one time series per value and never let it go.

Each role's class registers its metrics in the ``CollectorRegistry`` it is given (a fresh
one by default), so tests and several roles in one process never clash. Attributes are the
metric objects; where the only label is fixed for the process (an actor's ``env``), the
attribute is already bound to it, so the hot loop does no label lookup.
"""

from __future__ import annotations

import errno
import time
import weakref
from collections.abc import Iterable
from importlib import metadata
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from common import errors
from common.keys import METRIC_PREFIX, metric_name

try:
    VERSION = metadata.version("memup-cluster")
except metadata.PackageNotFoundError:  # a checkout that is not pip-installed
    VERSION = "unknown"
BUILD_INFO = f"{METRIC_PREFIX}_build_info"
"""The one metric shared by every role (labelled by role), so one query finds them all."""
OUTCOMES = ("success", "failure", "other")
"""The ``outcome`` label values of ``memup_actor_episodes_total``."""
UPDATE_KINDS = ("memup", "ppo")
ROLES = ("actor", "scorer", "learner")
"""The components ``memup up`` supervises."""


WIRE_REJECT_REASONS = tuple(dict.fromkeys(
    [errors.WireError.reason] + [cls.reason for cls in errors.WireError.__subclasses__()]))
"""``reason`` values of ``rejected_messages_total`` that exist (at 0) from the start."""

# Buckets cover the expected range (1-2.5-5 per decade) plus some margin above, so a
# slowdown shows up as a shift between buckets instead of disappearing into +Inf.
_DECADES = (1.0, 2.5, 5.0)
ENV_STEP_BUCKETS = (*(m * 10.0**e for e in range(-5, -1) for m in _DECADES), 0.1)
HOP_BUCKETS = (*(m * 10.0**e for e in range(-4, 0) for m in _DECADES), 1.0, 2.5)
UPDATE_BUCKETS = (*(m * 10.0**e for e in range(-3, 1) for m in _DECADES), 10.0, 30.0)
WAIT_BUCKETS = (*HOP_BUCKETS, 5.0, 10.0, 30.0)
CHECKPOINT_BUCKETS = (1e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SURPRISE_BUCKETS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
RETURN_BUCKETS = (-10.0, -5.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0)
"""Episode returns; T-Maze pays +4 or -3 at the end."""
LAG_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21)

# One build_info gauge per registry, shared by the roles registered in it (registering the
# same name twice in one registry raises).
_BUILD_INFO: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()


def _build_info(registry: CollectorRegistry) -> Gauge:
    if registry not in _BUILD_INFO:
        _BUILD_INFO[registry] = Gauge(BUILD_INFO, "Always 1; the labels say what is running.",
                                      ("version", "role"), registry=registry)
    return _BUILD_INFO[registry]


class _RoleMetrics:
    """Registers metrics named ``memup_<role>_...`` in one registry; sets build_info to 1."""

    role: ClassVar[str]

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.build_info = _build_info(self.registry)
        self.build_info.labels(version=VERSION, role=self.role).set(1)

    def _counter(self, name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
        # Written with the exposed name; prometheus_client adds ``_total`` itself.
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        return Counter(metric_name(self.role, name.removesuffix("_total")), doc, tuple(labels),
                       registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
        return Gauge(metric_name(self.role, name), doc, tuple(labels), registry=self.registry)

    def _histogram(self, name: str, doc: str, buckets: Iterable[float],
                   labels: Iterable[str] = ()) -> Histogram:
        return Histogram(metric_name(self.role, name), doc, tuple(labels),
                         buckets=tuple(buckets), registry=self.registry)


class ActorMetrics(_RoleMetrics):
    """Metrics of one actor; ``env_steps_total``, ``frames_total`` and ``env_restarts_total``
    are bound to ``env``; count episodes with :meth:`episode_finished`."""

    role = "actor"

    def __init__(self, registry: CollectorRegistry | None = None, env: str = "") -> None:
        # ``env`` has a default only because ``registry`` has one; an unnamed env is an error.
        if not env:
            raise ValueError("ActorMetrics needs the env name (task.env)")
        super().__init__(registry)
        self.env = env
        c, g, h = self._counter, self._gauge, self._histogram
        self.env_steps_total = c("env_steps_total", "Batched env steps.", ["env"]).labels(env=env)
        self.frames_total = c("frames_total", "Env frames (steps x envs).", ["env"]).labels(env=env)
        self.episodes_total = c("episodes_total", "Finished episodes.", ["env", "outcome"])
        for outcome in OUTCOMES:
            self.episodes_total.labels(env=env, outcome=outcome)
        self.episode_return = h("episode_return", "Return of finished episodes.", RETURN_BUCKETS)
        self.env_step_duration_seconds = h("env_step_duration_seconds",
                                           "Time of one batched env step.", ENV_STEP_BUCKETS)
        self.inference_duration_seconds = h("inference_duration_seconds",
                                            "Time of one batched policy forward.", HOP_BUCKETS)
        self.fragment_publish_duration_seconds = h("fragment_publish_duration_seconds",
                                                   "Time to push one fragment to Redis.",
                                                   HOP_BUCKETS)
        self.fragments_published_total = c("fragments_published_total", "Fragments in Redis.")
        self.fragments_dropped_total = c("fragments_dropped_total", "Fragments never published.",
                                         ["reason"])
        self.publish_queue_fragments = g("publish_queue_fragments", "Fragments awaiting publish.")
        self.policy_version = g("policy_version", "Version of the policy weights in use.")
        self.env_restarts_total = c("env_restarts_total", "Env workers restarted after a crash.",
                                    ["env"]).labels(env=env)
        self.redis_errors_total = c("redis_errors_total", "Failed Redis calls.", ["kind"])

    def episode_finished(self, outcome: str, episode_return: float) -> None:
        """Counts one episode under ``outcome`` (success, failure or other); records its return.

        Raises:
            ValueError: ``outcome`` is not one of :data:`OUTCOMES`.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        self.episodes_total.labels(env=self.env, outcome=outcome).inc()
        self.episode_return.observe(episode_return)


class ScorerMetrics(_RoleMetrics):
    """Metrics of one scorer; report the newest scored episode with :meth:`scored_through`."""

    role = "scorer"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        c, g, h = self._counter, self._gauge, self._histogram
        self.episodes_scored_total = c("episodes_scored_total", "Episodes scored and marked.")
        self.episodes_duplicate_total = c("episodes_duplicate_total",
                                          "Episodes skipped: already marked.")
        self.targets_marked_total = c("targets_marked_total", "Steps marked as MemUP targets.")
        self.surprise = h("surprise", "Per-step surprise of scored episodes.", SURPRISE_BUCKETS)
        self.episode_wait_seconds = h("episode_wait_seconds",
                                      "Time from an episode's done event to its mark.",
                                      WAIT_BUCKETS)
        self.score_duration_seconds = h("score_duration_seconds", "Time to score one batch.",
                                        UPDATE_BUCKETS)
        self.lag_seconds = g("lag_seconds", "Now minus done time of the newest scored episode.")
        self.stream_length_entries = g("stream_length_entries", "Entries in a stream.",
                                       ["stream"])
        self.stream_pending_entries = g("stream_pending_entries",
                                        "Delivered, unacknowledged entries of a group.", ["group"])
        self.replay_episodes = g("replay_episodes", "Episodes in the replay window.")
        self.replay_evicted_total = c("replay_evicted_total", "Episodes evicted from replay.")
        self.segments_served_total = c("segments_served_total", "Segments sent to learners.")
        self.segments_acked_total = c("segments_acked_total", "Segments acknowledged.")
        self.segments_redelivered_total = c("segments_redelivered_total",
                                            "Segments sent again to a lane that asked again.")
        self.rollouts_redelivered_total = c("rollouts_redelivered_total",
                                            "Rollouts sent again: unacked, or taken back.")
        self.handouts_released_total = c(
            "handouts_released_total", "Hand-outs taken back from a learner incarnation.",
            ["kind", "reason"])
        for kind in ("rollout", "segment"):
            for reason in ("new_incarnation", "lease_expired"):
                self.handouts_released_total.labels(kind=kind, reason=reason)
        self.rollouts_served_total = c("rollouts_served_total", "Rollouts sent for PPO.")
        self.rollouts_acked_total = c("rollouts_acked_total", "Rollouts acknowledged.")
        self.rollouts_dropped_total = c("rollouts_dropped_total", "Rollouts never served.",
                                        ["reason"])
        self.rollouts_dropped_total.labels(reason="stale")
        self.rejected_messages_total = c("rejected_messages_total", "Frames refused.", ["reason"])
        for reason in WIRE_REJECT_REASONS:
            self.rejected_messages_total.labels(reason=reason)
        self.auth_failures_total = c("auth_failures_total",
                                     "ZeroMQ handshakes refused by CURVE (no or unknown key).")
        self.redis_errors_total = c("redis_errors_total", "Failed Redis calls.", ["kind"])
        self.detector_version = g("detector_version", "Version of the detector weights in use.")
        self.memory_accuracy_ratio = g("memory_accuracy_ratio",
                                       "Detector accuracy on the final step of fresh episodes.")
        self.entries_reclaimed_total = c("entries_reclaimed_total",
                                         "Stream entries claimed from dead consumers.")
        self.entries_trimmed_total = c("entries_trimmed_total", "Stream entries trimmed.")
        self.episodes_dropped_total = c("episodes_dropped_total",
                                        "Done episodes not scored: fragments missing or broken.",
                                        ["reason"])
        for reason in ("missing", "incomplete"):
            self.episodes_dropped_total.labels(reason=reason)
        self._newest_done: float | None = None
        # Computed at scrape time, so a stalled scorer shows a growing lag, not a stale one.
        self.lag_seconds.set_function(self._lag)

    def scored_through(self, done_time: float) -> None:
        """Records the done time (``time.time()`` of the actor) of a scored episode."""
        if self._newest_done is None or done_time > self._newest_done:
            self._newest_done = done_time

    def _lag(self) -> float:
        return 0.0 if self._newest_done is None else max(0.0, time.time() - self._newest_done)


class LearnerMetrics(_RoleMetrics):
    """Metrics of the learner; report checkpoints with :meth:`checkpoint_saved`."""

    role = "learner"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        c, g, h = self._counter, self._gauge, self._histogram
        self.redis_errors_total = c("redis_errors_total", "Failed Redis calls.", ["kind"])
        self.updates_total = c("updates_total", "Optimizer updates.", ["kind"])
        self.samples_total = c("samples_total", "Steps trained on.", ["kind"])
        self.update_duration_seconds = h("update_duration_seconds", "Time of one update.",
                                         UPDATE_BUCKETS, ["kind"])
        for kind in UPDATE_KINDS:
            for metric in (self.updates_total, self.samples_total, self.update_duration_seconds):
                metric.labels(kind=kind)
        self.loss = g("loss", "Last value of a loss term.", ["loss"])
        self.memory_accuracy_ratio = g("memory_accuracy_ratio", "Memory accuracy on targets.")
        self.outcome_sign_accuracy_ratio = g(
            "outcome_sign_accuracy_ratio",
            "Share of the last batch's nonzero outcomes whose sign the predictor got right.")
        self.success_ratio = g("success_ratio", "Fraction of successful episodes trained on.")
        self.policy_lag_versions = h("policy_lag_versions",
                                     "Learner policy version minus the acting one.", LAG_BUCKETS)
        self.saved_activation_bytes = g("saved_activation_bytes",
                                        "Bytes saved for backward in the last update.")
        self.weights_version = g("weights_version", "Version of published weights.", ["name"])
        self.checkpoint_saves_total = c("checkpoint_saves_total", "Checkpoints written.")
        self.checkpoint_age_seconds = g("checkpoint_age_seconds",
                                        "Time since the last checkpoint (or since start).")
        self.checkpoint_duration_seconds = h("checkpoint_duration_seconds",
                                             "Time to write a checkpoint.", CHECKPOINT_BUCKETS)
        self.segment_rtt_seconds = h("segment_rtt_seconds",
                                     "Segment request to reply, over ZeroMQ.", HOP_BUCKETS)
        self.segment_wait_seconds = h("segment_wait_seconds", "Time an update waited for data.",
                                      WAIT_BUCKETS)
        self.segment_queue_depth = g("segment_queue_depth", "Segments received, not yet used.")
        self.requests_retried_total = c("requests_retried_total", "Requests sent again.")
        self.segments_duplicate_total = c("segments_duplicate_total", "Segments received twice.")
        self.segments_rollout_mismatch_total = c(
            "segments_rollout_mismatch_total",
            "Segments refused: cut with another memup.rollout (r) than the learner's.")
        self.rollouts_dropped_total = c("rollouts_dropped_total",
                                        "Rollouts received but too stale to train on.")
        self.rejected_messages_total = c("rejected_messages_total", "Frames refused.", ["reason"])
        for reason in WIRE_REJECT_REASONS:
            self.rejected_messages_total.labels(reason=reason)
        self.phase = g("phase", "Training phase: 1 memory only, 2 memory and policy.")
        self.scorers_connected = g("scorers_connected", "Scorers with a live connection.")
        # Counted from start until the first save: "no checkpoint for an hour" must alert.
        self._last_save = time.monotonic()
        self.checkpoint_age_seconds.set_function(lambda: time.monotonic() - self._last_save)

    def checkpoint_saved(self, duration_seconds: float) -> None:
        """Counts one checkpoint, records how long it took and restarts the age clock."""
        self.checkpoint_saves_total.inc()
        self.checkpoint_duration_seconds.observe(duration_seconds)
        self._last_save = time.monotonic()


class SupervisorMetrics(_RoleMetrics):
    """Metrics of ``memup up``: components it runs and restarts."""

    role = "supervisor"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.component_restarts_total = self._counter("component_restarts_total",
                                                      "Components restarted.", ["role"])
        self.components_running = self._gauge("components_running", "Components running.",
                                              ["role"])
        for role in ROLES:
            self.component_restarts_total.labels(role=role)
            self.components_running.labels(role=role)


def _roles(registry: CollectorRegistry) -> str:
    gauge = _BUILD_INFO.get(registry)
    found = sorted({s.labels["role"] for m in gauge.collect() for s in m.samples}) if gauge else []
    return "/".join(found) or "the"


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1") -> int:
    """Serves ``registry`` over HTTP at ``http://addr:port/metrics`` from a daemon thread.

    Args:
        registry: the role's registry (``ActorMetrics(...).registry``).
        port: the port, or 0 for any free one.
        addr: the address to bind; the default keeps metrics off the network.

    Returns:
        The bound port (the chosen one when ``port`` is 0).

    Raises:
        OSError: the port is in use (or cannot be bound); the message says how to fix it.
    """
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OSError(exc.errno, f"port {port} is in use: set {_roles(registry)} metrics "
                          "port in the config or 0 for any") from exc
        raise OSError(exc.errno, f"cannot serve metrics on {addr}:{port}: {exc}") from exc
    return int(server.server_address[1])


def sample_value(registry: CollectorRegistry, name: str,
                 labels: dict[str, str] | None = None) -> float | None:
    """The value of sample ``name`` (the exposed name, ``..._total`` for counters), or None."""
    return registry.get_sample_value(name, labels or {})
