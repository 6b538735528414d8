"""Quantiles of Prometheus histograms, as the pipeline benchmark reads them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from cli.bench_pipeline import histogram_quantile


def test_quantiles_interpolate_within_buckets_like_promql() -> None:
    registry = CollectorRegistry()
    h = Histogram("memup_x_seconds", "x", ["kind"], buckets=(0.1, 0.2, 0.4), registry=registry)
    for value in [0.05] * 50 + [0.15] * 40 + [0.3] * 10:
        h.labels(kind="a").observe(value)
    h.labels(kind="b").observe(5.0)
    text = generate_latest(registry).decode()
    # rank 50 of 100 ends exactly at the first bucket's edge
    assert histogram_quantile(text, "memup_x_seconds", {"kind": "a"}, 0.5) == 0.1
    # rank 99: 9 of the 10 observations inside (0.2, 0.4]
    assert abs(histogram_quantile(text, "memup_x_seconds", {"kind": "a"}, 0.99) - 0.38) < 1e-9
    # only the +Inf bucket holds kind b: the answer is the highest finite edge
    assert histogram_quantile(text, "memup_x_seconds", {"kind": "b"}, 0.5) == 0.4
    assert histogram_quantile(text, "memup_x_seconds", {"kind": "c"}, 0.5) is None
