"""Dynamic padding: rows of ids of different lengths as one tensor, padded to the batch's length.

A batch's length is its longest row rounded up to a multiple of a few tokens (``batch_length``). Every
distinct shape costs memory that outlives the batch: oneDNN compiles and caches a kernel per matmul
shape, and glibc's heap keeps the holes of freed tensors that differently sized ones do not fill. With
lengths in steps of 8, WNUT-17 fine-tuning peaked at 1525 MB instead of 2101 at the same speed
(``benchmarks/README.md``); GPUs' tensor cores prefer multiples of 8 as well. Short batches round in
smaller steps, so that padding never adds more than an eighth of the length: in steps of 8, Tatoeba's
12-token sentences trained 8% slower than unrounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# the label PyTorch's cross-entropy (and transformers' losses) skip: padding, and positions not trained on
IGNORE = -100


def batch_length(rows: Sequence[Sequence[int]], multiple: int = 1, limit: int | None = None) -> int:
    """The longest row's length rounded up to a multiple of ``multiple``, or of the largest power of
    two no more than an eighth of that length where it is smaller (so that rounding never adds more than
    an eighth: a 12-token batch stays 12, 20 becomes 20, 37 becomes 40), and not past ``limit`` (the
    model's window: positions beyond it may not exist) unless a row is longer itself."""
    longest = max((len(row) for row in rows), default=0)
    step = min(multiple, 1 << (max(longest // 8, 1).bit_length() - 1))  # a power of two <= longest / 8
    rounded = -(-longest // step) * step
    return max(longest, min(rounded, limit)) if limit is not None else rounded


def pad(
    rows: Sequence[Sequence[int]], value: int, dtype: torch.dtype = torch.long, length: int | None = None
) -> torch.Tensor:
    """``rows`` as a ``[len(rows), length]`` tensor (default: the longest row), padded with ``value``."""
    length = batch_length(rows) if length is None else length
    # one tensor from padded lists: faster than filling a tensor row by row for batch-sized inputs
    return torch.tensor([[*row, *[value] * (length - len(row))] for row in rows], dtype=dtype)


def padding_mask(rows: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    """1 over each row's own positions, 0 over its padding, ``length`` (default: the longest row) wide."""
    length = batch_length(rows) if length is None else length
    lengths = torch.tensor([len(row) for row in rows])
    return (torch.arange(length)[None, :] < lengths[:, None]).long()
