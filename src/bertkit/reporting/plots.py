"""Plots of a run: learning curves from the training log, and the confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

from bertkit.atomic import atomic_path


def read_log(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def metric_limits(values: list[float], greater_is_better: bool) -> tuple[float, float] | None:
    """The dev metric's y-axis: 0 to 1 for a score that lives there (F1, accuracy), so that runs look
    alike; otherwise (a loss, a perplexity, MSE, a correlation below 0) matplotlib's own scaling."""
    if greater_is_better and values and all(0 <= v <= 1 for v in values):
        return (0.0, 1.0)
    return None


def plot_curves(log_path: Path, out_path: Path, metric: str, greater_is_better: bool = True) -> None:
    """Write ``curves.png``: train loss (left axis) and dev ``metric`` (right axis) against the step."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    events = read_log(log_path)
    steps = [(e["step"], e["loss"]) for e in events if e["event"] == "step"]
    evals = [(e["step"], e[metric]) for e in events if e["event"] == "eval" and metric in e]
    fig, loss_ax = plt.subplots(figsize=(7, 4), dpi=110)
    if steps:
        loss_ax.plot(*zip(*steps), color="tab:blue", label="train loss")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("train loss", color="tab:blue")
    metric_ax = loss_ax.twinx()
    if evals:
        metric_ax.plot(*zip(*evals), color="tab:orange", marker="o", label=f"dev {metric}")
    direction = "" if greater_is_better else " (lower is better)"
    metric_ax.set_ylabel(f"dev {metric}{direction}", color="tab:orange")
    limits = metric_limits([value for _, value in evals], greater_is_better)
    if limits:
        metric_ax.set_ylim(*limits)
    fig.suptitle("learning curves")
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], labels: list[str], out_path: Path) -> None:
    """Write ``confusion.png``: counts with gold classes as rows and predicted classes as columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(
                j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black"
            )
    fig.suptitle("confusion matrix")
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
