"""Run a model over a data set and score it, streaming: only predictions are kept, never all logits.

Under torchrun, evaluation splits the records (never the windows of one record) across the ranks and
gathers the predictions back into record order, so the metrics equal one process's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from bertkit.data.batching import inference_batches
from bertkit.tasks.base import EvaluationTask
from bertkit.training import distributed
from bertkit.training.runtime import Runtime, eval_mode, release_free_memory, to_device
from bertkit.training.threads import give_way


def predict_features(
    model: torch.nn.Module,
    task: EvaluationTask,
    records: Sequence[Any],
    features: Sequence[Any],
    runtime: Runtime,
    batch_size: int,
    desc: str | None = "predict",
) -> list[Any]:
    """One prediction per record, from its (possibly several) encoded windows.

    ``desc`` labels a progress bar; None shows none (what a server calling this per request wants).
    """
    decoder = task.decoder(records, features)
    batches = inference_batches(features, batch_size)
    shown = desc is not None and getattr(runtime, "is_main", True)
    with eval_mode(model), runtime.autocast():
        for idx in tqdm(batches, desc=desc, unit="batch", leave=False, dynamic_ncols=True, disable=not shown):
            give_way()
            batch = to_device(task.collate([features[i] for i in idx]), runtime.device)
            decoder.add(task.predict_step(model, batch), batch)
    return decoder.predictions()


def predict_all(
    model: torch.nn.Module,
    task: EvaluationTask,
    records: Sequence[Any],
    features: Sequence[Any],
    runtime: Runtime,
    batch_size: int,
    desc: str | None = "predict",
) -> list[Any]:
    """``predict_features`` over all ``records``, each rank predicting every world-size-th record."""
    if getattr(runtime, "world_size", 1) == 1:
        return predict_features(model, task, records, features, runtime, batch_size, desc)
    mine, my_features = distributed.shard_records(records, features, runtime.rank, runtime.world_size)
    local = predict_features(model, task, mine, my_features, runtime, batch_size, desc)
    return distributed.interleave(distributed.gather_objects(local))


def evaluate_records(
    model: torch.nn.Module,
    task: EvaluationTask,
    records: Sequence[Any],
    runtime: Runtime,
    batch_size: int,
    desc: str | None = "evaluate",
    features: Sequence[Any] | None = None,
) -> dict:
    """Metrics of ``model`` on labelled ``records`` (pass ``features`` when already encoded)."""
    features = task.encode(records) if features is None else features
    # the freed heap of the training steps before, and of this evaluation after, would otherwise stay
    # resident: fragmented pages that differently shaped tensors do not reuse
    release_free_memory()
    predictions = predict_all(model, task, records, features, runtime, batch_size, desc)
    release_free_memory()
    return task.metrics(predictions, records)
