"""Dynamic padding: rows of ids of different lengths as one tensor, padded to the longest row."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad(rows: Sequence[Sequence[int]], value: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``rows`` as a ``[len(rows), longest]`` tensor, right-padded with ``value``."""
    length = max((len(row) for row in rows), default=0)
    # one tensor from padded lists: faster than filling a tensor row by row for batch-sized inputs
    return torch.tensor([[*row, *[value] * (length - len(row))] for row in rows], dtype=dtype)


def padding_mask(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """1 over each row's own positions, 0 over its padding."""
    length = max((len(row) for row in rows), default=0)
    lengths = torch.tensor([len(row) for row in rows])
    return (torch.arange(length)[None, :] < lengths[:, None]).long()
