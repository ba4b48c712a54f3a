"""The learning curve of ``bertkit curve`` from plain data: per training size, the main metric of each
seed summarised (mean, sample std, min, max), as a Markdown table and as a plot with a spread band."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bertkit.atomic import atomic_path


def summarize(n: int, per_seed: Mapping[int, float]) -> dict[str, Any]:
    """One size's row: ``n`` records, each seed's score, their mean, sample std (0 for one seed), min
    and max. Seeds whose run has not finished are simply absent."""
    values = list(per_seed.values())
    if not values:
        return {"n": n, "per_seed": {}, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": n,
        "per_seed": {str(seed): value for seed, value in per_seed.items()},
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def number(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def curve_table(rows: list[dict[str, Any]], metric: str, split: str = "dev") -> str:
    """Markdown: one line per size with every seed's score and the summary columns."""
    seeds = sorted({seed for row in rows for seed in row["per_seed"]}, key=int)
    head = ["records", *[f"seed {s}" for s in seeds], "mean", "std", "min", "max"]
    lines = [
        f"{split} {metric} by training records (mean and sample std over seeds)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [str(row["n"]), *[number(row["per_seed"].get(s)) for s in seeds]]
        cells += [number(row[k]) for k in ("mean", "std", "min", "max")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_learning_curve(rows: list[dict[str, Any]], out_path: Path, metric: str, split: str = "dev") -> None:
    """Write a PNG: the mean score against training records (log x), a band from min to max over the
    seeds, and each seed's score as a dot."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    done = [row for row in rows if row["mean"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    if done:
        n = [row["n"] for row in done]
        ax.fill_between(n, [r["min"] for r in done], [r["max"] for r in done], alpha=0.25, label="min-max")
        ax.plot(n, [r["mean"] for r in done], marker="o", label="mean")
        for row in done:
            ax.scatter([row["n"]] * len(row["per_seed"]), list(row["per_seed"].values()), s=8, color="gray")
    ax.set_xscale("log")
    if done:  # the sizes themselves as ticks: log-scale labels like 3x10^1 overlap and say less
        ax.set_xticks([row["n"] for row in done], [str(row["n"]) for row in done])
        ax.minorticks_off()
    ax.set_xlabel("training records (log scale)")
    ax.set_ylabel(f"{split} {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.suptitle("learning curve")
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
