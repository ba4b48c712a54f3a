"""Property tests for tasks/windows.py: windows cover every position and each position has one owner."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.windows import margin, owning_windows, window_starts


@st.composite
def window_args(draw) -> tuple[int, int, int]:
    size = draw(st.integers(1, 40))
    stride = draw(st.integers(0, size - 1))
    n = draw(st.integers(0, 400))
    return n, size, stride


@settings(max_examples=300, deadline=None)
@given(window_args())
def test_window_starts_cover_in_order_with_overlap(args):
    n, size, stride = args
    starts = window_starts(n, size, stride)
    assert starts and starts[0] == 0
    assert all(a < b for a, b in zip(starts, starts[1:]))  # no window twice
    assert all(s >= 0 and (s + size <= n or n <= size) for s in starts)  # inside the sequence
    if n >= size:
        assert starts[-1] + size == n  # the last window ends exactly at n
    else:
        assert starts == [0]
    for a, b in zip(starts, starts[1:]):
        assert a + size - b >= stride  # consecutive windows share at least `stride` positions
    covered = {p for s in starts for p in range(s, min(s + size, n))}
    assert covered == set(range(n))


@settings(max_examples=300, deadline=None)
@given(window_args())
def test_window_starts_use_no_more_windows_than_needed(args):
    n, size, stride = args
    starts = window_starts(n, size, stride)
    # with step size - stride, ceil((n - size) / step) steps reach the end
    step = size - stride
    assert len(starts) == (1 if n <= size else 1 + -(-(n - size) // step))


@settings(max_examples=300, deadline=None)
@given(window_args())
def test_each_position_has_one_owner_that_contains_it_with_most_context(args):
    n, size, stride = args
    starts = window_starts(n, size, stride)
    owners = owning_windows(n, starts, size)
    assert len(owners) == n
    assert owners == sorted(owners)  # ownership moves forward through the windows
    for pos, w in enumerate(owners):
        assert 0 <= w < len(starts)
        assert starts[w] <= pos < starts[w] + size
        best = max(margin(pos, s, size) for s in starts)
        assert margin(pos, starts[w], size) == best


def test_margin():
    assert [margin(p, 2, 5) for p in range(8)] == [-1, -1, 0, 1, 2, 1, 0, -1]


def test_small_example_by_hand():
    # 10 positions, windows of 4 sharing 2: starts 0, 2, 4, then 6 so that the last one ends at 10
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    # margins (distance to the nearer edge): position 2 has 1 in [0,4) and 0 in [2,6) -> window 0;
    # position 3 has 0 in [0,4) and 1 in [2,6) -> window 1; and so on
    assert owning_windows(10, [0, 2, 4, 6], 4) == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    # 7 positions, windows [0,4) and [3,7): position 3 has margin 0 in both; the later window wins the tie
    assert window_starts(7, 4, 1) == [0, 3]
    assert owning_windows(7, [0, 3], 4) == [0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize(("size", "stride"), [(0, 0), (-1, 0), (4, 4), (4, -1), (4, 9)])
def test_invalid_window_arguments(size, stride):
    with pytest.raises(ValueError):
        window_starts(10, size, stride)
