"""Tests for the metric objects of every role: names, units, labels and the HTTP exporter."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common import metrics
from common.metrics import (
    ActorMetrics,
    LearnerMetrics,
    ScorerMetrics,
    SupervisorMetrics,
    sample_value,
    serve_metrics,
)

RESERVED = ("_count", "_sum", "_bucket", "_total", "_created", "_info", "_gcount", "_gsum")
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum", "_created")
ID_LABEL = re.compile(r"(^|_)(id|ids|uuid)$|episode|segment|seed")


def actor(registry: CollectorRegistry) -> ActorMetrics:
    """An actor's metrics with a value in every series, labelled ones included."""
    m = ActorMetrics(registry, env="tmaze")
    m.env_steps_total.inc()
    m.frames_total.inc(8)
    m.episode_finished("success", 4.0)
    m.env_step_duration_seconds.observe(1e-4)
    m.inference_duration_seconds.observe(1e-3)
    m.fragment_publish_duration_seconds.observe(1e-3)
    m.fragments_published_total.inc()
    m.fragments_dropped_total.labels(reason="queue_full").inc()
    m.publish_queue_fragments.set(3)
    m.policy_version.set(7)
    m.env_restarts_total.inc()
    m.redis_errors_total.labels(kind="connection").inc()
    return m


def scorer(registry: CollectorRegistry) -> ScorerMetrics:
    m = ScorerMetrics(registry)
    m.episodes_scored_total.inc(2)
    m.surprise.observe(0.5)
    m.score_duration_seconds.observe(0.02)
    m.stream_length_entries.labels(stream="episodes").set(10)
    m.stream_pending_entries.labels(group="scorers").set(1)
    m.rollouts_dropped_total.labels(reason="stale").inc()
    m.redis_errors_total.labels(kind="timeout").inc()
    m.scored_through(time.time())
    return m


def learner(registry: CollectorRegistry) -> LearnerMetrics:
    m = LearnerMetrics(registry)
    m.updates_total.labels(kind="memup").inc()
    m.samples_total.labels(kind="memup").inc(640)
    m.update_duration_seconds.labels(kind="memup").observe(0.3)
    for loss in ("memory", "policy", "value", "entropy"):
        m.loss.labels(loss=loss).set(0.1)
    m.weights_version.labels(name="detector").set(2)
    m.policy_lag_versions.observe(1)
    m.checkpoint_saved(0.4)
    m.phase.set(1)
    m.redis_errors_total.labels(kind="connection").inc()
    return m


def supervisor(registry: CollectorRegistry) -> SupervisorMetrics:
    m = SupervisorMetrics(registry)
    m.component_restarts_total.labels(role="scorer").inc()
    m.components_running.labels(role="actor").set(4)
    return m


ROLES: dict[str, Callable[[CollectorRegistry], object]] = {
    "actor": actor, "scorer": scorer, "learner": learner, "supervisor": supervisor,
}


def families(registry: CollectorRegistry) -> list:
    return list(text_string_to_metric_families(generate_latest(registry).decode()))


@pytest.mark.parametrize("role", ROLES)
def test_each_role_constructs_in_a_fresh_registry_and_says_what_runs(role: str) -> None:
    registry = CollectorRegistry()
    ROLES[role](registry)
    labels = {"version": metrics.VERSION, "role": role}
    assert sample_value(registry, "memup_build_info", labels) == 1.0
    assert sample_value(registry, "memup_build_info", {"version": "x", "role": role}) is None


@pytest.mark.parametrize("role", ROLES)
def test_two_instances_in_separate_registries_do_not_clash(role: str) -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    ROLES[role](first)
    ROLES[role](CollectorRegistry())  # a third, throwaway, to show construction is repeatable
    ROLES[role](second)
    assert {f.name for f in families(first)} == {f.name for f in families(second)}
    for family in families(first):
        if family.type == "counter" and family.samples:
            name = family.samples[0].name
            labels = family.samples[0].labels
            assert sample_value(first, name, labels) == sample_value(second, name, labels)
    with pytest.raises(ValueError, match="Duplicated"):
        ROLES[role](first)  # same role twice in one registry is a wiring bug, and loud


def test_the_default_registry_is_a_fresh_one_and_roles_can_share_one() -> None:
    assert ScorerMetrics().registry is not ScorerMetrics().registry
    shared = CollectorRegistry()
    for make in ROLES.values():
        make(shared)
    for role in ROLES:
        info = {"version": metrics.VERSION, "role": role}
        assert sample_value(shared, "memup_build_info", info) == 1.0


@pytest.mark.parametrize("role", ROLES)
def test_names_units_and_labels_follow_the_conventions(role: str) -> None:
    registry = CollectorRegistry()
    ROLES[role](registry)
    found = families(registry)
    assert len(found) > 1
    # prometheus_client exposes each counter's and histogram's start time as a gauge
    # ``<name>_created`` in the text format: its series, not a metric of ours.
    stems = {f.name for f in found if f.type in ("counter", "histogram")}
    for family in found:
        created = family.name.endswith("_created")
        if family.name == "memup_build_info" or (created and family.name[:-8] in stems):
            continue
        assert family.name.startswith(f"memup_{role}_"), family.name
        assert not family.name.endswith(RESERVED), family.name
        assert not re.search(r"milli|micro|kilo|mega|percent", family.name), family.name
        assert family.samples, f"{family.name} has no series to check"
        for sample in family.samples:
            suffix = sample.name.removeprefix(family.name)
            if family.type == "counter":
                assert suffix in ("_total", "_created"), sample.name
            elif family.type == "histogram":
                assert suffix in HISTOGRAM_SERIES, sample.name
            else:
                assert suffix == "", sample.name
            for label in sample.labels:
                assert not ID_LABEL.search(label), f"{family.name} has id-like label {label}"


def test_counters_are_exposed_once_with_total() -> None:
    text = generate_latest(actor(CollectorRegistry()).registry).decode()
    assert 'memup_actor_env_steps_total{env="tmaze"} 1.0' in text
    assert "memup_actor_fragments_published_total 1.0" in text
    assert "_total_total" not in text
    with pytest.raises(ValueError, match="_total"):
        ActorMetrics(env="tmaze")._counter("steps", "no suffix")


def test_labelled_series_exist_at_zero_before_the_first_event() -> None:
    # rate() and alerts see a series from the start, not only after the first failure.
    a, s, lrn = ActorMetrics(env="tmaze"), ScorerMetrics(), LearnerMetrics()
    for outcome in metrics.OUTCOMES:
        labels = {"env": "tmaze", "outcome": outcome}
        assert sample_value(a.registry, "memup_actor_episodes_total", labels) == 0.0
    for reason in ("malformed", "too_large", "schema_version", "dtype", "unknown_kind"):
        for reg, role in ((s.registry, "scorer"), (lrn.registry, "learner")):
            name = f"memup_{role}_rejected_messages_total"
            assert sample_value(reg, name, {"reason": reason}) == 0.0
    assert sample_value(lrn.registry, "memup_learner_updates_total", {"kind": "ppo"}) == 0.0


def test_episode_outcome_lag_and_checkpoint_age() -> None:
    a = ActorMetrics(env="tmaze")
    a.episode_finished("failure", -3.0)
    assert sample_value(a.registry, "memup_actor_episodes_total",
                        {"env": "tmaze", "outcome": "failure"}) == 1.0
    assert sample_value(a.registry, "memup_actor_episode_return_bucket", {"le": "-3.0"}) == 1.0
    with pytest.raises(ValueError, match="outcome"):
        a.episode_finished("episode-17", 0.0)
    with pytest.raises(ValueError, match="env"):
        ActorMetrics()

    s = ScorerMetrics()
    assert sample_value(s.registry, "memup_scorer_lag_seconds") == 0.0
    s.scored_through(time.time() - 30.0)
    s.scored_through(time.time() - 60.0)  # older than the newest: ignored
    lag = sample_value(s.registry, "memup_scorer_lag_seconds")
    assert lag is not None and 29.0 < lag < 40.0

    lrn = LearnerMetrics()
    lrn._last_save -= 100.0
    age = sample_value(lrn.registry, "memup_learner_checkpoint_age_seconds")
    assert age is not None and age >= 100.0
    lrn.checkpoint_saved(0.5)
    age = sample_value(lrn.registry, "memup_learner_checkpoint_age_seconds")
    assert age is not None and age < 5.0
    assert sample_value(lrn.registry, "memup_learner_checkpoint_saves_total") == 1.0
    assert sample_value(lrn.registry, "memup_learner_checkpoint_duration_seconds_count") == 1.0


def test_serve_metrics_on_port_zero_serves_http() -> None:
    m = ScorerMetrics()
    m.episodes_scored_total.inc(3)
    port = serve_metrics(m.registry, 0)
    assert port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "memup_scorer_episodes_scored_total 3.0" in text
    assert 'memup_build_info{role="scorer"' in text


def test_a_taken_port_gives_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        registry = ActorMetrics(env="tmaze").registry
        message = f"port {port} is in use: set actor metrics port in the config or 0 for any"
        with pytest.raises(OSError, match=re.escape(message)):
            serve_metrics(registry, port)


def test_promtool_finds_no_problems() -> None:
    registry = CollectorRegistry()
    for make in ROLES.values():
        make(registry)
    text = generate_latest(registry)
    assert families(registry)  # the exposition parses, whether or not promtool is here
    promtool = shutil.which("promtool")
    if promtool is None:
        return  # only this check needs promtool; CI images without it still run the rest
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          timeout=60, check=False)
    report = (done.stdout + done.stderr).decode()
    assert done.returncode == 0 and not report.strip(), report
