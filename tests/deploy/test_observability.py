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
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common.config import load_config
from common.embedded_redis import EmbeddedRedis, free_port
from common.redis_io import connect
from common.status import read_statuses

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "memup.yml"
CLUSTER_CONFIG = ROOT / "configs" / "up_tmaze_lnr_20.toml"
DATASOURCE_UID = "memup-prometheus"

ROLE_JOBS = ("actor", "scorer", "learner")
"""Job names: prometheus.yml names its jobs after the roles, and the rules rely on it."""
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                  "scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS",
                  "ALERTS_FOR_STATE"}
"""Series Prometheus makes itself: a dashboard may use them though no role exports them."""
TARGET_LABELS = {"job", "instance", "service", "le"}
"""Labels Prometheus attaches (prometheus.yml adds ``service``), plus histograms' ``le``."""
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
                    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000"}
"""Values substituted for Grafana's variables before promtool checks an expression."""
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}
PROM_TIMEOUT_S = 60.0


def require(binary: str) -> str:
    """The path of ``binary``; skips the test without it, or fails under CI=true."""
    path = shutil.which(binary)
    if path:
        return path
    message = (f"{binary} is not installed: `apt-get install prometheus` (Debian) gives "
               "promtool and the prometheus server; .ci/run installs it")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# ------------------------------------------------------------------------------ reading


def load_rules(path: Path = RULES) -> list[tuple[str, str, str]]:
    """``(kind, name, expr)`` of every rule in a rules file (kind: record or alert).

    A small reader for the subset of YAML rules.yml uses (``expr:`` inline, or a ``|`` or
    ``>-`` block), so the tests need no YAML library; promtool and the live Prometheus
    cross-check the count.
    """
    lines = path.read_text().splitlines()
    rules: list[list[str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        head = re.match(r"\s*-\s+(record|alert):\s*(\S+)\s*$", line)
        if head:
            rules.append([head[1], head[2], ""])
        expr = re.match(r"(\s*)expr:\s*(.*?)\s*$", line)
        if expr:
            indent, value = len(expr[1]), expr[2]
            if value in ("|", "|-", ">", ">-"):
                block = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or len(lines[i + 1])
                                              - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    block.append(lines[i].strip())
                value = (" " if value.startswith(">") else "\n").join(block).strip()
            elif value[:1] in ("'", '"') and value[-1:] == value[:1]:
                value = value[1:-1]
            assert rules, f"{path}: expr before any rule: {line!r}"
            rules[-1][2] = value
        i += 1
    for kind, name, value in rules:
        assert value, f"{path}: {kind} {name} has no expr"
    return [(k, n, e) for k, n, e in rules]


def dashboards() -> dict[str, dict[str, Any]]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, f"no dashboards in {DASHBOARDS}"
    return {f.name: json.loads(f.read_text()) for f in files}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """``(file, panel title, expr)`` of every target of every dashboard."""
    out = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((name, panel.get("title", "?"), target["expr"]))
    return out


def substitute(expr: str, board: dict[str, Any], builtins: dict[str, str]) -> str:
    """``expr`` with Grafana's ``$var``, ``${var}`` and ``[[var]]`` replaced by values.

    Dashboard variables (``templating.list``) become ``.*`` (they sit inside ``=~``
    matchers); an unknown variable fails the test.
    """
    defined = {v["name"] for v in board.get("templating", {}).get("list", [])}

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        if name in builtins:
            return builtins[name]
        if name in defined:
            return ".*"
        raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def all_exprs(builtins: dict[str, str] = GRAFANA_BUILTINS) -> list[tuple[str, str]]:
    """``(where, expr)`` of every dashboard target and every rule, variables substituted."""
    boards = dashboards()
    out = [(f"{name} / {title}", substitute(expr, boards[name], builtins))
           for name, title, expr in dashboard_exprs()]
    out += [(f"rules.yml / {name}", expr) for _, name, expr in load_rules()]
    return out


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def referenced_metrics(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or durations)."""
    s = _strip_strings(expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery windows
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names = set()
    for match in re.finditer(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = match[0]
        if token in KEYWORDS or re.match(r"\s*\(", s[match.end():]):
            continue  # a keyword, or a function / aggregation call
        names.add(token)
    return names


def referenced_labels(expr: str) -> set[str]:
    """Label names an expression matches on or groups by."""
    s = _strip_strings(expr)
    labels = set()
    for matchers in re.findall(r"\{([^{}]*)\}", s):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                            s):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    return labels


def recorded_names() -> set[str]:
    return {name for kind, name, _ in load_rules() if kind == "record"}


@dataclass
class Exposition:
    """What live /metrics pages expose: series names (by metric type) and label names.

    Series are the sample names really on the pages: a histogram whose buckets go below 0
    has no ``_sum`` (prometheus_client leaves it out). A labelled family with no child yet
    shows only its ``# TYPE`` line; it counts with the series names its type implies.
    """

    series: dict[str, str]  #: series name (``x_total``, ``y_bucket``, ``z``) -> family type
    families: dict[str, str]  #: family base name -> type
    labels: set[str]

    @classmethod
    def parse(cls, texts: list[str]) -> Exposition:
        families: dict[str, str] = {}
        implied: dict[str, list[str]] = {}
        sampled: dict[str, set[str]] = {}
        labels: set[str] = set()
        for text in texts:
            family = None
            for line in text.splitlines():
                typed = re.match(r"# TYPE (\S+) (\S+)", line)
                if typed:
                    name, kind = typed[1], typed[2]
                    family = name.removesuffix("_total") if kind == "counter" else name
                    families[family] = kind
                    suffixes = {"counter": ("_total", "_created"),
                                "histogram": ("_bucket", "_sum", "_count", "_created")}
                    implied[family] = [family + x for x in suffixes.get(kind, ("",))]
                    sampled.setdefault(family, set())
                elif line and not line.startswith("#"):
                    sample = re.match(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s", line)
                    assert sample and family is not None, f"unparsable sample line {line!r}"
                    sampled[family].add(sample[1])
                    labels |= set(re.findall(r'([A-Za-z_]\w*)="', sample[2] or ""))
        series = {name: families[family] for family, names in sampled.items()
                  for name in (names or implied[family])}
        return cls(series, families, labels)


# ------------------------------------------------------------------------- static tests


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


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


# ------------------------------------------------------------------------ live cluster


@dataclass
class Cluster:
    ports: dict[str, int]  #: replica name (actor-0, ..., supervisor) -> metrics port
    stderr: Path

    def scrape(self, name: str) -> str:
        url = f"http://127.0.0.1:{self.ports[name]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    def job(self, name: str) -> str:
        return name.split("-")[0]

    def tail(self) -> str:
        """The end of `memup up`'s stderr (restarted roles are logged there)."""
        return "\n`memup up` stderr:\n" + self.stderr.read_text(errors="replace")[-2000:]


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `memup up` stops its roles (learner checkpoints)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`memup up` on T-Maze-LNR-20 against a Redis of our own, until the module ends.

    Ready once every replica reports its metrics port and the learner has published its
    first detector weights. Phase I is kept from ending (target accuracy above 1) so the
    roles keep producing while the tests look; ``--max-minutes`` stops a cluster this
    fixture failed to stop.
    """
    tmp = tmp_path_factory.mktemp("observability")
    config = load_config(CLUSTER_CONFIG)
    expected = {"learner-0"} | {f"scorer-{i}" for i in range(config.scorer.replicas)} | {
        f"actor-{i}" for i in range(config.actor.replicas)}
    redis = EmbeddedRedis().start()
    stderr = tmp / "up.stderr"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "up", "--config", str(CLUSTER_CONFIG),
                 "--set", f"run.dir={tmp}", "--set", "memup.target_accuracy=1.01",
                 "--max-minutes", "3"],
                cwd=ROOT, env={**os.environ, "REDIS_URL": redis.url}, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)
        r = connect(redis.url)
        ports: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"memup up exited with {proc.returncode}:\n"
                            f"{stderr.read_text()[-3000:]}")
            statuses = read_statuses(r, config.run.name)
            ports = {name: int(s["metrics_port"]) for name, s in statuses.items()
                     if "metrics_port" in s}
            found = re.search(r"supervisor metrics .* on http://127\.0\.0\.1:(\d+)/metrics",
                              stderr.read_text())
            # Training has begun and published detector weights: the loss and weights
            # series exist, so the live checks see every label the dashboards group by.
            updates = statuses.get("learner-0", {}).get("memup_updates", 0)
            if expected <= set(ports) and found and updates >= config.memup.publish_every:
                ports["supervisor"] = int(found[1])
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the cluster did not report every role within 120 s (have {ports}); "
                        f"stderr:\n{stderr.read_text()[-3000:]}\nlogs in {tmp}")
        r.close()
        yield Cluster(ports, stderr)
    finally:
        if proc is not None:
            _stop(proc, timeout=90)
        redis.stop()


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


# --------------------------------------------------------------------- real Prometheus


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error
            return json.loads(exc.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Prometheus]:
    """The Debian prometheus server scraping the live roles every second, with rules.yml."""
    binary = require("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    jobs: dict[str, list[str]] = {}
    for name, port in cluster.ports.items():
        jobs.setdefault(cluster.job(name), []).append(f"127.0.0.1:{port}")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in sorted(jobs.items())],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
    log = tmp / "prometheus.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # the free port may be taken before prometheus binds it
            port = free_port()
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, f"--config.file={tmp / 'prometheus.yml'}",
                     f"--storage.tsdb.path={tmp / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            server = Prometheus(port)
            deadline = time.monotonic() + PROM_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"{server.base}/-/ready", timeout=2) as ready:
                        if ready.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            if proc.poll() is None:
                break
            if "address already in use" not in log.read_text():
                break
        assert proc is not None and proc.poll() is None, \
            f"prometheus did not start:\n{log.read_text()[-3000:]}"
        # Data to query: env steps counted, over at least two scrapes.
        deadline = time.monotonic() + PROM_TIMEOUT_S
        while time.monotonic() < deadline:
            steps = server.scalar("sum(rate(memup_actor_env_steps_total[15s]))")
            if steps:
                break
            time.sleep(1)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
