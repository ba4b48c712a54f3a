"""Batches of similar-length features (little padding), and padding them into tensors.

Training batches are shuffled with a seed (the same seed gives the same batches, which resume relies
on) and kept as index arrays, so an epoch over millions of features costs a few bytes per feature;
inference batches keep file order chunk by chunk, so the windows of one record stay close.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MEGABATCH = 50  # batches sorted together by length: little padding, still well shuffled


@dataclass(frozen=True)
class EpochBatches:
    """The batches of one epoch: batch ``k`` is ``order[s : s + batch_size]`` with ``s = starts[k]``."""

    order: np.ndarray  # example indices, sorted by length within each megabatch
    starts: np.ndarray  # where each batch begins in ``order``, in the shuffled batch order
    batch_size: int

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> list[int]:
        start = int(self.starts[k])
        return self.order[start : start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return (self[k] for k in range(len(self)))


def epoch_batches(lengths: Sequence[int] | np.ndarray, batch_size: int, seed: int) -> EpochBatches:
    """Shuffled batches of similar-length examples, the same for the same seed (so resume can skip)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = np.asarray(lengths)
    order = torch.randperm(len(lengths), generator=gen).numpy()
    chunk = batch_size * MEGABATCH
    for begin in range(0, len(order), chunk):
        group = order[begin : begin + chunk]
        # longest first; a stable sort keeps the shuffled order among equal lengths
        order[begin : begin + chunk] = group[np.argsort(-lengths[group], kind="stable")]
    # a megabatch is a whole number of batches, so batches are plain consecutive slices of ``order``
    starts = np.arange(0, len(order), batch_size)
    shuffle = torch.randperm(len(starts), generator=gen).numpy()
    return EpochBatches(order, starts[shuffle], batch_size)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """``epoch_batches`` as plain lists (for small data and tests)."""
    return list(epoch_batches(lengths, batch_size, seed))


SORT_CHUNK = 64  # batches sorted by length together: little padding, bounded pending predictions


def feature_length(feature: Any) -> int:
    """Sequence length of a feature, used to group batches by length."""
    return len(feature.input_ids)


def inference_batches(features: Sequence[Any], batch_size: int) -> list[list[int]]:
    """Batches of similar length, in file order chunk by chunk (windows of a record stay close)."""
    batches = []
    chunk = batch_size * SORT_CHUNK
    for begin in range(0, len(features), chunk):
        idx = sorted(
            range(begin, min(begin + chunk, len(features))), key=lambda i: feature_length(features[i])
        )
        # the longest batch first: the largest activations are allocated once and the later batches fit
        # in them (in rising order each batch took fresh heap pages: +130 MB over a WNUT-17 test set)
        batches += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)][::-1]
    return batches
