"""Batches of similar-length features (little padding), and padding them into tensors.

Training batches are shuffled with a seed (the same seed gives the same batches, which resume relies
on); inference batches keep file order chunk by chunk, so the windows of one record stay close.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

MEGABATCH = 50  # batches sorted together by length: little padding, still well shuffled


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length examples, the same for the same seed (so resume can skip)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=gen).tolist()
    batches = []
    chunk = batch_size * MEGABATCH
    for begin in range(0, len(order), chunk):
        group = sorted(order[begin : begin + chunk], key=lambda i: lengths[i], reverse=True)
        batches += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    shuffle = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[k] for k in shuffle]


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
        batches += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    return batches
