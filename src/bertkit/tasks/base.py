"""The Task protocol: what a task family must provide so that the one training loop can run it.

A task knows its data and its head; the loop knows neither. ``encode`` and the decoder are inverse:
every input record comes back with exactly one prediction, however many windows it was split into.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

Batch = dict[str, Any]


class Decoder(Protocol):
    """Collects model outputs batch by batch and turns them into one prediction per record."""

    def add(self, outputs: Any, batch: Batch) -> None: ...

    def predictions(self) -> list[Any]: ...


class Task(Protocol):
    name: str
    main_metric: str  # the dev metric that picks the best checkpoint and drives early stopping
    needs_calibration: bool  # whether calibrate() must see dev predictions after training
    model_class: Any  # the transformers Auto class that loads a saved model of this task
    uncovered: int  # inputs of the last encode() that no window covers: counted, and 0 unless broken

    def read(self, path: str, *, labelled: bool = True) -> list[Any]: ...

    def setup(self, train: Sequence[Any]) -> None: ...

    def augment_train(self, train: list[Any], seed: int) -> list[Any]: ...

    def encode(self, records: Sequence[Any]) -> list[Any]: ...

    def collate(self, features: Sequence[Any]) -> Batch: ...

    def build_model(self) -> torch.nn.Module: ...

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any: ...

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor: ...

    def decoder(self, records: Sequence[Any], features: Sequence[Any]) -> Decoder: ...

    def metrics(self, predictions: list[Any], records: Sequence[Any]) -> dict: ...

    def baseline(self, train: Sequence[Any], records: Sequence[Any]) -> dict | None: ...

    def calibrate(self, predictions: list[Any], records: Sequence[Any]) -> None: ...

    def text_records(self, texts: Sequence[str]) -> list[Any]: ...

    def to_api(self, record: Any, prediction: Any) -> Any: ...

    def write_predictions(
        self, src: str, out: str, records: Sequence[Any], predictions: list[Any]
    ) -> None: ...
