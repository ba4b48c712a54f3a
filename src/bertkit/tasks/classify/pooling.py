"""From window logits back to one prediction per text: the windows of a long text are pooled."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from bertkit.tasks.base import Batch, WindowDecoder


class PooledDecoder(WindowDecoder):
    """Pools the window logits of each example (mean or max) as soon as all its windows are seen."""

    def __init__(
        self,
        windows_per_record: Counter,
        n_records: int,
        pooling: str,
        predict: Callable[[np.ndarray], Any],
    ):
        self.pooling, self.predict = pooling, predict
        self.pending: dict[int, list[np.ndarray]] = {}
        super().__init__(windows_per_record, n_records)

    def window_outputs(self, outputs: Any, batch: Batch) -> np.ndarray:
        return outputs.logits.float().cpu().numpy()

    def collect(self, record: int, payload: np.ndarray) -> None:
        self.pending.setdefault(record, []).append(payload)

    def finish(self, record: int) -> Any:
        stacked = np.stack(self.pending.pop(record))
        return self.predict(stacked.max(0) if self.pooling == "max" else stacked.mean(0))
