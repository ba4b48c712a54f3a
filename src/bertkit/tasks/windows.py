"""Overlapping windows over long sub-word sequences, so that no input is ever cut.

A sequence longer than the model's window is covered by windows that share ``stride`` positions with
their neighbours. Each position is *owned* by exactly one window, the one where it sits farthest from
an edge (most context on both sides), which is how predictions are merged back without double counts.
"""

from __future__ import annotations


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
