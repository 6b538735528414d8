"""``memup bench memory``: the BPTT extrapolation and the lazy MemUP case."""

from __future__ import annotations

import pytest

from cli.bench_memory import extrapolate_bptt, run_case


def row(method: str, length: int, saved: int, status: str = "ok") -> dict:
    return {"method": method, "length": length, "saved_bytes": saved, "status": status,
            "peak_rss_bytes": 100 + saved, "seconds_per_update": saved / 1000,
            "saved_parameter_bytes": 7}


def test_bptt_is_extrapolated_on_the_line_through_the_two_longest_points() -> None:
    results = [row("bptt", 1000, 1_000_000), row("bptt", 10_000, 10_000_000),
               row("bptt", 100_000, 100_000_000), row("memup", 100_000, 5),
               row("bptt", 200_000, 0, "oom")]
    (out,) = extrapolate_bptt(results, [1_000_000])
    assert out["status"] == "extrapolated" and out["from_lengths"] == [10_000, 100_000]
    assert out["saved_bytes"] == 1_000_000_000
    assert out["seconds_per_update"] == pytest.approx(1_000_000)
    assert extrapolate_bptt([row("bptt", 1000, 1)], [10_000]) == []


def test_memup_case_saves_the_same_bytes_at_any_length() -> None:
    short = run_case("memup", 200, 20, 2)
    long = run_case("memup", 5000, 20, 2)
    assert short["status"] == long["status"] == "ok"
    assert short["saved_bytes"] == long["saved_bytes"] > 0
