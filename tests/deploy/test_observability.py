"""Observability: deploy/prometheus and deploy/grafana, checked by promtool and on live roles.

Static checks: promtool accepts the Prometheus config, the rules and every PromQL
expression of every Grafana dashboard; the dashboards reference the provisioned datasource
by its fixed uid, use ``rate()`` on counters only and ``histogram_quantile`` on ``_bucket``
series summed ``by (le)``.

Live checks, on one `memup up` cluster (T-Maze-LNR-20, 2 actors, a scorer, a learner) shared
by the module: every metric name a dashboard or rule references is exported by the running
roles (or is a recording rule, or Prometheus' own ``up``); a real Prometheus server scrapes
the roles, evaluates every recording rule and alert without error (no alert pending on a
healthy cluster) and answers every dashboard query.

Needs ``promtool`` and ``prometheus`` (Debian: ``apt-get install prometheus``); without them
the tests skip, or fail when ``CI=true``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.observability_cluster import (
    Cluster,
    Prometheus,
    run_cluster,
    run_prometheus,
)
from tests.deploy.observability_support import (
    DATASOURCE_UID,
    DATASOURCES,
    GRAFANA_BUILTINS,
    PROM_TIMEOUT_S,
    PROMETHEUS_CONFIG,
    PROMETHEUS_OWN,
    PROVIDERS,
    RULES,
    TARGET_LABELS,
    Exposition,
    _promtool,
    _strip_strings,
    all_exprs,
    dashboard_exprs,
    dashboards,
    load_rules,
    panels,
    recorded_names,
    referenced_labels,
    referenced_metrics,
    substitute,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from run_cluster(tmp_path_factory)


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Prometheus]:
    yield from run_prometheus(cluster, tmp_path_factory)


def test_promtool_accepts_the_prometheus_config_and_rules() -> None:
    config = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", rules.stdout + rules.stderr)
    assert found and int(found[1]) == len(load_rules()), rules.stdout  # the reader missed none
    text = PROMETHEUS_CONFIG.read_text()
    for job, port in (("actor", 9101), ("scorer", 9102), ("learner", 9103)):
        block = re.search(rf"job_name: {job}\n(.*?)(?=\n  - job_name|\Z)", text, re.S)
        assert block, f"no job {job} in prometheus.yml"
        assert "dns_sd_configs" in block[1] and f"names: [{job}]" in block[1], block[1]
        assert "type: A" in block[1] and f"port: {port}" in block[1], block[1]
    assert re.search(r"^\s*scrape_interval: 5s$", text, re.M)
    assert re.search(r"^rule_files:\n\s*- rules\.yml", text, re.M)


def test_promtool_accepts_every_dashboard_expression(tmp_path: Path) -> None:
    boards = dashboards()
    exprs = list(dict.fromkeys(substitute(expr, boards[name], GRAFANA_BUILTINS)
                               for name, _, expr in dashboard_exprs()))
    assert len(exprs) >= 20
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(rules, indent=1))  # JSON is YAML
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout + checked.stderr


def test_dashboards_use_the_provisioned_datasource_and_sound_promql() -> None:
    datasources = DATASOURCES.read_text()
    assert re.search(rf"^\s*uid: {DATASOURCE_UID}$", datasources, re.M)
    assert re.search(r"^\s*url: http://prometheus:9090$", datasources, re.M)
    assert re.search(r"^\s*type: prometheus$", datasources, re.M)
    providers = PROVIDERS.read_text()
    assert re.search(r"^\s*type: file$", providers, re.M)
    assert re.search(r"^\s*path: /var/lib/grafana/dashboards$", providers, re.M)
    boards = dashboards()
    assert "memup-overview.json" in boards
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids) and all(uids), uids
    for name, board in boards.items():
        text = json.dumps(board)
        assert "${DS_" not in text, f"{name}: an export placeholder; use uid {DATASOURCE_UID}"
        assert board.get("id") is None and board["title"], name
        ids = [p["id"] for p in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            where = f"{name} / {panel['title']}"
            assert panel["targets"] and panel.get("gridPos"), where
            for ds in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
                assert ds == {"type": "prometheus", "uid": DATASOURCE_UID}, where
    for where, expr in all_exprs():
        s = _strip_strings(expr)
        for func, name in re.findall(r"\b(rate|irate|increase|resets)\s*\(\s*([A-Za-z_:][\w:]*)",
                                     s):
            assert re.search(r"_(total|bucket|sum|count)$", name), \
                f"{where}: {func}() of {name}, which is not a counter: {expr}"
        if "histogram_quantile" in s:
            assert "_bucket" in s and re.search(r"\bby\s*\([^)]*\ble\b", s), \
                f"{where}: histogram_quantile needs sum by (le) of a _bucket rate: {expr}"
        for name in referenced_metrics(expr):
            if name.endswith(("_total", "_bucket")) and ":" not in name:
                # a raw counter or bucket shown as is climbs forever: always rate() it
                assert re.search(rf"\b(rate|irate|increase|resets)\s*\(\s*{name}\b", s), \
                    f"{where}: {name} used without rate()/increase(): {expr}"
        bad = {label for label in referenced_labels(expr)
               if re.search(r"episode|segment|seed|uuid|(^|_)id$", label)}
        assert not bad, f"{where}: per-item labels {bad} (one series per item): {expr}"


def test_the_overview_shows_every_required_signal() -> None:
    overview = dashboards()["memup-overview.json"]
    in_overview = {name for panel in panels(overview) for t in panel.get("targets", [])
                   for name in referenced_metrics(substitute(t["expr"], overview,
                                                             GRAFANA_BUILTINS))}
    required = {
        "memup_actor_env_steps_total", "memup_actor_frames_total",
        "memup_learner_samples_total", "memup_scorer_stream_length_entries",
        "memup_scorer_stream_pending_entries", "memup_learner_policy_lag_versions_bucket",
        "memup_scorer_lag_seconds", "memup_scorer_surprise_bucket",
        "memup_scorer_targets_marked_total", "memup_learner_loss",
        "memup_learner_success_ratio", "memup_actor_episode_return_bucket",
        "memup_learner_saved_activation_bytes", "memup_scorer_rejected_messages_total",
        "memup_learner_rejected_messages_total", "memup_actor_env_restarts_total",
        "memup_supervisor_component_restarts_total", "memup_learner_checkpoint_age_seconds",
        "memup_learner_weights_version", "memup_actor_policy_version",
    }
    assert required <= in_overview, sorted(required - in_overview)
    heatmaps = [p for p in panels(overview) if p["type"] == "heatmap"]
    assert any("memup_scorer_surprise_bucket" in t["expr"] and t.get("format") == "heatmap"
               for p in heatmaps for t in p["targets"])


def test_every_referenced_metric_is_exported_by_the_live_roles(cluster: Cluster) -> None:
    texts = {name: cluster.scrape(name) for name in cluster.ports}
    exposed = Exposition.parse(list(texts.values()))
    for name, text in texts.items():  # each role exposes its own family set (and build_info)
        role = cluster.job(name)
        assert f"memup_{role}_" in text and "memup_build_info" in text, name
    recorded = recorded_names()
    missing: dict[str, list[str]] = {}
    wrong_kind: list[str] = []
    for where, expr in all_exprs():
        for name in referenced_metrics(expr):
            if name in PROMETHEUS_OWN or name in recorded:
                continue
            if name not in exposed.series:
                missing.setdefault(name, []).append(where)
            elif name.endswith("_total") and exposed.series[name] != "counter":
                wrong_kind.append(f"{where}: {name} is a {exposed.series[name]}")
            elif (name.endswith(("_bucket", "_sum", "_count"))
                  and exposed.series[name] != "histogram"):
                wrong_kind.append(f"{where}: {name} is a {exposed.series[name]}")
    assert not missing, "referenced but not exported by any live role:\n" + "\n".join(
        f"  {name}: {', '.join(sorted(set(w)))}" for name, w in sorted(missing.items()))
    assert not wrong_kind, "\n".join(wrong_kind)
    unknown = {f"{where}: {label}" for where, expr in all_exprs()
               for label in referenced_labels(expr) - exposed.labels - TARGET_LABELS}
    assert not unknown, f"labels no live series has: {sorted(unknown)}"


def test_prometheus_scrapes_every_replica_and_sees_env_steps(
        cluster: Cluster, prometheus: Prometheus) -> None:
    steps = prometheus.scalar("sum(rate(memup_actor_env_steps_total[15s]))")
    frames = prometheus.scalar("sum(rate(memup_actor_frames_total[15s]))")
    assert steps and steps > 0, f"env steps/s {steps}{cluster.tail()}"
    assert frames and frames >= steps, (frames, steps)  # a step advances every env
    per_actor = prometheus.query("sum by (instance) (rate(memup_actor_env_steps_total[15s]))")
    actors = sum(1 for n in cluster.ports if n.startswith("actor-"))
    assert len(per_actor) == actors, f"{per_actor}{cluster.tail()}"
    up = prometheus.query("max_over_time(up[30s])")
    targets = {(s["metric"]["job"], s["metric"]["instance"]): float(s["value"][1]) for s in up}
    assert len(targets) == len(cluster.ports), targets
    assert all(v == 1 for v in targets.values()), f"never scraped: {targets}{cluster.tail()}"
    roles = {s["metric"]["role"] for s in prometheus.query("memup_build_info")}
    assert roles == {"actor", "scorer", "learner", "supervisor"}, roles


def test_rules_evaluate_cleanly_on_live_data_and_no_alert_fires(
        prometheus: Prometheus) -> None:
    expected = {name for _, name, _ in load_rules()}
    never = "0001-01-01T00:00:00Z"
    deadline = time.monotonic() + PROM_TIMEOUT_S
    alerts: list[dict[str, Any]] = []
    while True:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
        evaluated = all(rule.get("lastEvaluation", never) != never for rule in rules)
        # The recording rule has an env-steps rate once two scrapes fall in its window.
        steps = prometheus.scalar("sum(job:memup_actor_env_steps:rate1m)")
        if (evaluated and not alerts and steps) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {rule["name"] for rule in rules} == expected
    unhealthy = [(r["name"], r.get("health"), r.get("lastError")) for r in rules
                 if r.get("health") != "ok"]
    assert not unhealthy, unhealthy
    # A healthy cluster: nothing pending or firing (an alert on the wrong label or job
    # name, e.g. absent() of a role that does exist, would show up here).
    assert not alerts, [(a["labels"], a["state"]) for a in alerts]
    assert steps and steps > 0, steps
    age = prometheus.scalar("job:memup_learner_checkpoint_age_seconds:max")
    assert age is not None and 0 <= age < 600


def test_every_dashboard_query_runs_on_live_data(prometheus: Prometheus) -> None:
    boards = dashboards()
    live = {**GRAFANA_BUILTINS, "__rate_interval": "15s", "__interval": "1s"}
    empty = []
    for name, title, expr in dashboard_exprs():
        result = prometheus.query(substitute(expr, boards[name], live))  # asserts success
        if not result:
            empty.append(f"{name} / {title}: {expr}")
    # Panels that must show data on any running cluster, whatever its phase.
    must = ("Env steps/s per actor and total", "Frames/s: raw vs end-to-end",
            "Stream length and pending entries", "Checkpoint age", "Roles up")
    blank = [e for e in empty if any(f"/ {title}:" in e for title in must)]
    assert not blank, "\n".join(blank)
