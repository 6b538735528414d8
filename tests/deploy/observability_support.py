"""Helpers of the observability deploy tests (see test_observability.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
