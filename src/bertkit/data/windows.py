"""Overlapping windows over long sub-word sequences, so that no input is ever cut.

A sequence longer than the model's window is covered by windows that share ``stride`` positions with
their neighbours. Each position is *owned* by exactly one window, the one where it sits farthest from
an edge (most context on both sides), which is how predictions are merged back without double counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def window_starts(n: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of ``size`` positions covering ``range(n)``.

    Consecutive windows overlap by at least ``stride`` positions; the last one ends exactly at ``n``.
    """
    if size <= 0:
        raise ValueError(f"window size must be positive, got {size}")
    if not 0 <= stride < size:
        raise ValueError(f"stride must be in [0, {size}), got {stride}")
    if n <= size:
        return [0]
    step = size - stride
    return [*range(0, n - size, step), n - size]


def owning_windows(n: int, starts: list[int], size: int) -> list[int]:
    """For each position, the index of the window in which it has the most context on its closer side."""
    owners = []
    w = 0
    for pos in range(n):
        # windows are sorted, so the best window index never decreases as pos grows
        while (
            w + 1 < len(starts)
            and starts[w + 1] <= pos
            and margin(pos, starts[w + 1], size) >= margin(pos, starts[w], size)
        ):
            w += 1
        owners.append(w)
    return owners


def margin(pos: int, start: int, size: int) -> int:
    """Distance from ``pos`` to the nearer edge of the window ``[start, start + size)`` (-1 if outside)."""
    if not start <= pos < start + size:
        return -1
    return min(pos - start, start + size - 1 - pos)


@dataclass(frozen=True)
class Template:
    """Where a tokenizer puts its special tokens around one text or a pair, and the token types.

    Read off the tokenizer itself (``[CLS] A [SEP] B [SEP]`` for BERT, ``<s> A </s></s> B </s>`` for
    RoBERTa), so windows can be assembled from sub-word ids for any model family.
    """

    single: tuple[list[int], list[int]]  # ids before and after A
    pair: tuple[list[int], list[int], list[int]]  # ids before A, between A and B, after B
    pair_types: tuple[int, int, int, int, int]  # token type of: before, A, between, B, after

    @classmethod
    def of(cls, tokenizer: Any) -> Template:
        one = tokenizer("a")
        before, _, after = cut_segments(one["input_ids"], one.sequence_ids())
        two = tokenizer("a", "b")
        segments = cut_segments(two["input_ids"], two.sequence_ids())
        types = two.get("token_type_ids") or [0] * len(two["input_ids"])
        cut_types = cut_segments(types, two.sequence_ids())
        pair_types = tuple(seg[0] if seg else 0 for seg in cut_types)
        return cls((before, after), (segments[0], segments[2], segments[4]), pair_types)  # type: ignore[arg-type]

    @property
    def single_overhead(self) -> int:
        return len(self.single[0]) + len(self.single[1])

    @property
    def pair_overhead(self) -> int:
        return sum(len(s) for s in self.pair)

    def build(self, a: list[int], b: list[int] | None = None) -> tuple[list[int], list[int]]:
        """Input ids and token type ids of one window holding ``a`` (and ``b``)."""
        if b is None:
            ids = [*self.single[0], *a, *self.single[1]]
            return ids, [0] * len(ids)
        parts = (self.pair[0], a, self.pair[1], b, self.pair[2])
        ids = [t for part in parts for t in part]
        types = [kind for part, kind in zip(parts, self.pair_types) for _ in part]
        return ids, types


def cut_segments(values: list[int], sequence_ids: list[int | None]) -> list[list[int]]:
    """Split a probe encoding into [specials, A, specials] or [specials, A, specials, B, specials]."""
    kinds = (None, 0, None, 1, None) if 1 in sequence_ids else (None, 0, None)
    out, i = [], 0
    for kind in kinds:
        segment = []
        while i < len(values) and sequence_ids[i] == kind:
            segment.append(values[i])
            i += 1
        out.append(segment)
    return out
