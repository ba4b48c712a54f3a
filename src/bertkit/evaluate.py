"""Run a model over a data set and score it, streaming: only predictions are kept, never all logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from bertkit.runtime import Runtime, eval_mode, to_device
from bertkit.tasks.base import Task, feature_length

SORT_CHUNK = 64  # batches sorted by length together: little padding, bounded pending predictions


def predict_features(
    model: torch.nn.Module,
    task: Task,
    records: Sequence[Any],
    features: Sequence[Any],
    runtime: Runtime,
    batch_size: int,
    desc: str = "predict",
) -> list[Any]:
    """One prediction per record, from its (possibly several) encoded windows."""
    decoder = task.decoder(records, features)
    model.to(runtime.device)
    with eval_mode(model), runtime.autocast():
        for idx in tqdm(
            inference_batches(features, batch_size), desc=desc, unit="batch", leave=False, dynamic_ncols=True
        ):
            batch = to_device(task.collate([features[i] for i in idx]), runtime.device)
            decoder.add(task.forward(model, batch), batch)
    return decoder.predictions()


def inference_batches(features: Sequence[Any], batch_size: int) -> list[list[int]]:
    """Batches of similar length, in file order chunk by chunk (windows of a record stay close)."""
    batches = []
    chunk = batch_size * SORT_CHUNK
    for begin in range(0, len(features), chunk):
        idx = sorted(
            range(begin, min(begin + chunk, len(features))), key=lambda i: feature_length(features[i])
        )
        batches += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    return batches


def evaluate_records(
    model: torch.nn.Module,
    task: Task,
    records: Sequence[Any],
    runtime: Runtime,
    batch_size: int,
    desc: str = "evaluate",
    features: Sequence[Any] | None = None,
) -> dict:
    """Metrics of ``model`` on labelled ``records`` (pass ``features`` when already encoded)."""
    features = task.encode(records) if features is None else features
    predictions = predict_features(model, task, records, features, runtime, batch_size, desc)
    return task.metrics(predictions, records)


def format_table(columns: dict[str, dict], title: str = "") -> str:
    """A plain-text table of the metrics in ``columns`` (e.g. {"before": {...}, "after": {...}})."""
    if all("per_type" in m for m in columns.values()):
        return format_entity_table(columns, title)
    names = [k for k, v in next(iter(columns.values())).items() if isinstance(v, float)]
    lines = [title] if title else []
    lines.append(f"{'':<14}" + "".join(f"{c:>12}" for c in columns))
    for name in names:
        cells = "".join(
            f"{m[name]:>12.4f}" if isinstance(m.get(name), float) else f"{'-':>12}" for m in columns.values()
        )
        lines.append(f"{name[:14]:<14}{cells}")
    return "\n".join(lines)


def format_entity_table(metrics: dict[str, dict], title: str = "") -> str:
    """A plain-text table of P/R/F1 for each column in ``metrics`` ({"before": {...}, "after": {...}})."""
    columns = list(metrics)
    types = sorted({t for m in metrics.values() for t in m.get("per_type", {})})
    head = f"{'':<18}" + "".join(f"{c:>24}" for c in columns)
    sub = f"{'':<18}" + "".join(f"{'P':>8}{'R':>8}{'F1':>8}" for _ in columns)
    lines = [title, head, sub] if title else [head, sub]

    def row(name: str, get: Any) -> str:
        cells = ""
        for c in columns:
            m = get(metrics[c])
            cells += f"{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}" if m else f"{'-':>24}"
        return f"{name[:18]:<18}{cells}"

    for t in types:
        lines.append(row(t, lambda m, t=t: m.get("per_type", {}).get(t)))
    lines.append(row("micro avg", lambda m: m))
    return "\n".join(lines)
