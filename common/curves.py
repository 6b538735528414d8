"""Learning-curve PNGs from a run's metrics records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and CI
import matplotlib.pyplot as plt


def plot_curves(series: dict[str, list[dict[str, Any]]], x: str, y: str, out: str | Path,
                title: str, target: float | None = None, xlabel: str | None = None,
                target_label: str | None = None) -> Path:
    """Plots ``y`` against ``x`` for several labelled runs into one PNG.

    Args:
        series: label → records holding ``x`` and ``y``.
        x, y: record fields for the axes.
        out: PNG path.
        title: plot title.
        target: optional horizontal line (e.g. the accuracy target).
        target_label: the line's legend entry (default ``target <value>``).
        xlabel: x-axis label (defaults to ``x``).
    """
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, records in series.items():
        pts = [(r[x], r[y]) for r in records if x in r and y in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=".", label=label)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1,
                   label=target_label or f"target {target}")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
