"""Frozen-layer caching: with the embeddings and the bottom K encoder layers frozen, their output for
every training and dev window is computed once, and each later step and evaluation replays it and
runs only the layers above.

The frozen part then runs without dropout (in eval mode): what it computes must be the same at every
epoch to be cached. A run without the cache and with ``--model.frozen_dropout false`` trains to the
same weights (tested). No library does this for us; the pieces are small: a table of hidden states
(in memory, or memory-mapped on disk when large), a task wrapper that adds each batch's rows, and a
context that swaps the frozen modules for a replay of those rows during one forward pass.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit.data.batching import inference_batches
from bertkit.training.runtime import Runtime, eval_mode, to_device

log = logging.getLogger(__name__)

# hidden states above this many bytes go to a memory-mapped file instead of memory
IN_MEMORY_BYTES = 2 * 1024**3
BASE_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
HIDDEN = "frozen_hidden"  # the batch key of the replayed rows


def frozen_base(model: nn.Module) -> nn.Module | None:
    """The BERT-style encoder inside ``model`` (``embeddings`` + ``encoder.layer``), if it has one."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if (
        base is None
        or not hasattr(base, "embeddings")
        or not hasattr(getattr(base, "encoder", None), "layer")
    ):
        return None
    return base


def frozen_layer_count(base: nn.Module) -> int:
    """How many bottom layers (embeddings first) take no gradient: -1 when the embeddings train."""
    if any(p.requires_grad for p in base.embeddings.parameters()):
        return -1
    count = 0
    for layer in base.encoder.layer:
        if any(p.requires_grad for p in layer.parameters()):
            break
        count += 1
    return count


class FrozenStates:
    """The output of the frozen part for a set of windows, one row per token, found by window object."""

    def __init__(self, features: Sequence[Any], hidden_size: int, folder: Path):
        lengths = np.array([len(f.input_ids) for f in features], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.rows = {id(f): (f, i) for i, f in enumerate(features)}
        shape = (int(self.offsets[-1]), hidden_size)
        size = shape[0] * shape[1] * 4
        if size > IN_MEMORY_BYTES:
            handle, name = tempfile.mkstemp(dir=folder, prefix=".frozen-states.", suffix=".tmp")
            Path(name).unlink()  # the mapping keeps the data; nothing is left behind by a crash
            with open(handle, "w+b") as file:  # the mapping outlives the file object
                self.table = np.memmap(file, dtype=np.float32, mode="w+", shape=shape)
        else:
            self.table = np.zeros(shape, dtype=np.float32)
        log.info("frozen-layer cache: %d windows, %.0f MB %s", len(features), size / 2**20,
                 "memory-mapped" if size > IN_MEMORY_BYTES else "in memory")  # fmt: skip

    def store(self, index: int, states: torch.Tensor) -> None:
        begin, end = self.offsets[index], self.offsets[index + 1]
        self.table[begin:end] = states[: end - begin].numpy()

    def batch(self, features: Sequence[Any], length: int) -> torch.Tensor | None:
        """The rows of ``features``, right-padded to ``length``; None unless every one is cached."""
        found = [self.rows.get(id(f)) for f in features]
        if not all(hit is not None and hit[0] is f for hit, f in zip(found, features)):
            return None
        out = torch.zeros(len(features), length, self.table.shape[1])
        for b, (_, i) in enumerate(found):
            begin, end = self.offsets[i], self.offsets[i + 1]
            out[b, : end - begin] = torch.from_numpy(np.asarray(self.table[begin:end]))
        return out


def compute_states(
    model: nn.Module, task: Any, features: Sequence[Any], runtime: Runtime, batch_size: int, folder: Path
) -> FrozenStates:
    """Run the frozen part once over ``features`` (eval mode, the run's precision) and keep its output."""
    base = frozen_base(model)
    count = frozen_layer_count(base)
    states = FrozenStates(features, model.config.hidden_size, folder)
    with eval_mode(model), runtime.autocast(), bottom_only(base, count):
        for idx in inference_batches(features, batch_size):
            batch = to_device(task.collate([features[i] for i in idx]), runtime.device)
            out = base(**{k: batch[k] for k in BASE_INPUTS if k in batch}).last_hidden_state
            for row, i in zip(out.float().cpu(), idx):
                states.store(i, row)
    return states


@contextlib.contextmanager
def bottom_only(base: nn.Module, count: int) -> Iterator[None]:
    """``base`` as its embeddings and bottom ``count`` layers alone (no pooler)."""
    layers, pooler = base.encoder.layer, getattr(base, "pooler", None)
    base.encoder.layer, base.pooler = layers[:count], None
    try:
        yield
    finally:
        base.encoder.layer, base.pooler = layers, pooler


class Replay(nn.Module):
    """Stands in for the embeddings: returns the cached output of the frozen part."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.hidden


@contextlib.contextmanager
def replayed(base: nn.Module, count: int, hidden: torch.Tensor | None) -> Iterator[None]:
    """During one forward pass: the cached rows in place of the embeddings and the bottom ``count``
    layers of ``base``."""
    if hidden is None:
        yield
        return
    embeddings, layers = base.embeddings, base.encoder.layer
    base.embeddings, base.encoder.layer = Replay(hidden), layers[count:]
    try:
        yield
    finally:
        base.embeddings, base.encoder.layer = embeddings, layers


class CachedTask:
    """``task`` whose batches carry the cached rows of their windows, and whose forward passes replay
    them; every other attribute is the task's own."""

    def __init__(self, task: Any, states: FrozenStates, base: nn.Module, count: int):
        self.task, self.states = task, states
        self.base, self.count = base, count  # found once: the frozen part does not change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)

    def collate(self, features: Sequence[Any]) -> dict:
        batch = self.task.collate(features)
        hidden = self.states.batch(features, batch["input_ids"].shape[1])
        if hidden is not None:
            batch[HIDDEN] = hidden
        return batch

    def forward(self, model: nn.Module, batch: dict) -> Any:
        with replayed(self.base, self.count, batch.get(HIDDEN)):
            return self.task.forward(model, batch)

    def predict_step(self, model: nn.Module, batch: dict) -> Any:
        with replayed(self.base, self.count, batch.get(HIDDEN)):
            return self.task.predict_step(model, batch)


def with_cache(
    model: nn.Module,
    tasks: tuple[Any, Any],
    features: tuple[Sequence[Any], Sequence[Any]],
    cfg: Any,
    runtime: Runtime,
    batch_size: int,
    folder: Path,
) -> tuple[Any, Any]:
    """The (train, dev) tasks to train and evaluate with: cached ones when ``cfg`` (the model config)
    freezes the bottom of a BERT-style encoder and caching is on; else the tasks as they are."""
    if not (cfg.freeze_embeddings or cfg.freeze_layers):
        return tasks
    base = frozen_base(model)
    count = frozen_layer_count(base) if base is not None else -1
    why_not = (
        "it is off (--model.cache_frozen false)" if not cfg.cache_frozen
        else "LoRA adapts the frozen layers" if cfg.peft != "none"
        else "this model has no BERT-style encoder to cut" if base is None
        else "the embeddings train (add --model.freeze_embeddings)" if count < 0
        else ""
    )  # fmt: skip
    if why_not:
        log.info("frozen layers are not cached: %s", why_not)
        if not cfg.frozen_dropout and count >= 0:
            no_dropout_below(base, count)
        return tasks
    log.info(
        "embeddings and %d encoder layers frozen: their output is computed once (no dropout there)", count
    )
    states = compute_states(model, tasks[0], [*features[0], *features[1]], runtime, batch_size, folder)
    return CachedTask(tasks[0], states, base, count), CachedTask(tasks[1], states, base, count)


def no_dropout_below(base: nn.Module, count: int) -> None:
    """Run the embeddings and the bottom ``count`` layers in eval mode (no dropout) also while
    training: the uncached equivalent of the cache (``--model.frozen_dropout false``)."""
    for module in [base.embeddings, *base.encoder.layer[:count]]:
        module.register_forward_pre_hook(to_eval_mode)


def to_eval_mode(module: nn.Module, args: Any) -> None:
    module.train(False)
