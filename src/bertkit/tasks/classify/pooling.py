"""From window logits back to one prediction per text: the windows of a long text are pooled."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from bertkit.tasks.base import Batch

if TYPE_CHECKING:
    from bertkit.tasks.classify.task import ClassifyTask, ClassPrediction


class PooledDecoder:
    """Pools the window logits of each example (mean or max) as soon as all its windows are seen."""

    def __init__(self, task: ClassifyTask, windows_per_record: Counter, n_records: int):
        self.task = task
        self.remaining = dict(windows_per_record)
        self.pending: dict[int, list[np.ndarray]] = {}
        self.results: list[ClassPrediction | None] = [None] * n_records

    def add(self, outputs: Any, batch: Batch) -> None:
        logits = outputs.logits.float().cpu().numpy()
        for row, record in zip(logits, batch["record"]):
            self.pending.setdefault(record, []).append(row)
            self.remaining[record] -= 1
            if self.remaining[record] == 0:
                stacked = np.stack(self.pending.pop(record))
                pooled = stacked.max(0) if self.task.cfg.pooling == "max" else stacked.mean(0)
                self.results[record] = self.task.predict_from_logits(pooled)

    def predictions(self) -> list[ClassPrediction]:
        missing = [r for r, res in enumerate(self.results) if res is None]
        if missing:
            raise RuntimeError(f"no prediction for {len(missing)} example(s), e.g. #{missing[0]}")
        return self.results  # type: ignore[return-value]
