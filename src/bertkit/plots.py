"""Learning curves from the training log: train loss and the dev metric by step."""

from __future__ import annotations

import json
from pathlib import Path

from bertkit.atomic import atomic_path


def read_log(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curves(log_path: Path, out_path: Path, metric: str) -> None:
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
    metric_ax.set_ylabel(f"dev {metric}", color="tab:orange")
    metric_ax.set_ylim(0, 1)
    fig.suptitle("learning curves")
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
