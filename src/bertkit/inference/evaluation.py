"""Run a model over a data set and score it, streaming: only predictions are kept, never all logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from bertkit.data.batching import inference_batches
from bertkit.tasks.base import Task
from bertkit.training.runtime import Runtime, eval_mode, to_device


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
