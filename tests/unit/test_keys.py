"""Tests for the shared names: Redis keys under one prefix per run, groups, consumers, metrics."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from common import keys


def test_every_key_lives_under_the_run_prefix() -> None:
    assert keys.prefix("run-1") == "memup:run-1:"
    assert keys.fragments_key("run-1", "ep-7") == "memup:run-1:frag:ep-7"
    assert keys.episodes_stream("run-1") == "memup:run-1:episodes"
    assert keys.mark_key("run-1", "ep-7") == "memup:run-1:mark:ep-7"
    assert keys.replay_key("run-1") == "memup:run-1:replay"
    assert keys.weights_key("run-1", "detector") == "memup:run-1:weights:detector"
    assert keys.dead_letter_stream("run-1") == "memup:run-1:dead_letter"
    assert keys.scorer_endpoint_key("run-1", 2) == "memup:run-1:endpoint:scorer-2"


def test_keys_of_different_runs_and_kinds_never_collide() -> None:
    names = set()
    for run in ("a", "b", "a.b"):
        for episode in ("e1", "e2"):
            names |= {keys.fragments_key(run, episode), keys.mark_key(run, episode)}
        names |= {keys.episodes_stream(run), keys.replay_key(run), keys.dead_letter_stream(run),
                  keys.weights_key(run, "policy"), keys.scorer_endpoint_key(run, 0)}
    assert len(names) == 3 * (2 * 2 + 5)


def test_the_endpoint_pattern_matches_exactly_the_scorer_endpoints() -> None:
    pattern = keys.scorer_endpoints_pattern("run-1")
    assert fnmatch.fnmatchcase(keys.scorer_endpoint_key("run-1", 0), pattern)
    assert fnmatch.fnmatchcase(keys.scorer_endpoint_key("run-1", "pod-a"), pattern)
    assert not fnmatch.fnmatchcase(keys.scorer_endpoint_key("run-10", 0), pattern)
    assert not fnmatch.fnmatchcase(keys.mark_key("run-1", "scorer-1"), pattern)


def test_groups_consumers_and_metrics() -> None:
    assert (keys.SCORERS_GROUP, keys.PPO_GROUP) == ("scorers", "ppo")
    assert keys.consumer_name("scorer", 1) == "scorer-1"
    assert keys.consumer_name("learner", "pod-0") == "learner-pod-0"
    assert keys.METRIC_PREFIX == "memup"
    assert keys.metric_name("scorer", "frames_total") == "memup_scorer_frames_total"


@pytest.mark.parametrize(
    "value",
    ["", " ", "a b", "a:b", "a\n", "\ta", "ép", "a*", "a?", "a[1]", "a\\b", "-a", ".a", "a/b",
     "x" * 129, None, 3, b"run"],
    ids=repr,
)
def test_invalid_ids_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="invalid run id"):
        keys.prefix(value)
    with pytest.raises(ValueError, match="invalid episode id"):
        keys.mark_key("run", value)
    with pytest.raises(ValueError, match="invalid episode id"):
        keys.fragments_key("run", value)
    with pytest.raises(ValueError, match="invalid weights name"):
        keys.weights_key("run", value)


@pytest.mark.parametrize("value", ["a", "A-1", "run_2024.01", "0", "1700000000000-0",
                                   "x" * 128])
def test_valid_ids_pass_unchanged(value: str) -> None:
    assert keys.validate_id(value) == value
    assert keys.mark_key(value, value) == f"memup:{value}:mark:{value}"


@pytest.mark.parametrize("role, replica", [("Scorer", 1), ("scorer-x", 1), ("", 1),
                                           ("scorer", -1), ("scorer", True), ("scorer", "a:b"),
                                           ("scorer", "")])
def test_invalid_consumer_names_are_refused(role: Any, replica: Any) -> None:
    with pytest.raises(ValueError):
        keys.consumer_name(role, replica)


@pytest.mark.parametrize("name", ["", "Frames", "frames-total", "1st", None])
def test_invalid_metric_names_are_refused(name: Any) -> None:
    with pytest.raises(ValueError, match="metric name"):
        keys.metric_name("scorer", name)


def test_the_learner_writes_only_fields_of_the_control_hash() -> None:
    """Readers look fields up by ``keys.CONTROL_*``; a field under another name would be
    written and never read."""
    import threading
    from unittest import mock

    from common.config import ClusterConfig
    from learner.run_state import RunState

    r = mock.Mock()
    state = RunState(ClusterConfig(), r, mock.Mock(), threading.Event(), mock.Mock())
    state.set_control(phase=2, trained_steps=5, done=1)
    r.hset.assert_called_once_with(keys.control_key(ClusterConfig().run.name),
                                   mapping={"phase": 2, "trained_steps": 5, "done": 1})
    with pytest.raises(ValueError, match="stage"):
        state.set_control(stage=2)
    assert set(keys.CONTROL_FIELDS) == {"phase", "trained_steps", "done"}
