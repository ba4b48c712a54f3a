"""Tests for tasks/relation/window.py: one window per relation, both opening markers always in it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.errors import BertkitError
from bertkit.tasks.relation.window import Marked, MarkedParts, fit_window, share


def parts_of(lengths: list[int], marker_width: int) -> MarkedParts:
    """Distinct ids for every position (text counts up from 0, markers count down from -1)."""
    counter = iter(range(10**6))
    before, first, between, second, after = ([next(counter) for _ in range(n)] for n in lengths)
    markers = iter(range(-1, -1000, -1))

    def marker() -> list[int]:
        return [next(markers) for _ in range(marker_width)]

    return MarkedParts(
        before, Marked(marker(), first, marker()), between, Marked(marker(), second, marker()), after
    )


def flat(parts: MarkedParts) -> list[int]:
    return [*parts.before, *parts.first.ids(), *parts.between, *parts.second.ids(), *parts.after]


def is_subsequence(short: list[int], long: list[int]) -> bool:
    it = iter(long)
    return all(x in it for x in short)


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=5, max_size=5),
    marker_width=st.integers(1, 3),
    budget=st.integers(12, 80),
)
def test_the_window_keeps_both_opening_markers_and_the_text_order(lengths, marker_width, budget):
    parts = parts_of(lengths, marker_width)
    window = fit_window(parts, budget)
    ids, whole = window.ids, flat(parts)
    assert len(ids) <= budget
    assert ids[window.first_start : window.first_start + marker_width] == parts.first.open
    assert ids[window.second_start : window.second_start + marker_width] == parts.second.open
    assert is_subsequence(ids, whole)
    core = len(parts.first) + len(parts.between) + len(parts.second)
    assert window.shortened == (core > budget)
    assert window.trimmed == (len(ids) < len(whole))
    if not window.shortened:  # a slice of the text with the whole marked core, as long as fits
        start = whole.index(ids[0])
        assert ids == whole[start : start + len(ids)] and len(ids) == min(budget, len(whole))
    elif len(parts.first) + len(parts.second) <= budget:  # both marked entities whole, the gap cut
        assert is_subsequence(parts.first.ids() + parts.second.ids(), ids) and len(ids) == budget
        assert parts.first.close[-1] in ids and parts.second.close[-1] in ids


def test_context_is_shared_around_the_entities():
    parts = parts_of([10, 1, 2, 1, 10], 1)
    window = fit_window(parts, 12)  # the core (3 + 2 + 3 sub-words) leaves 4: two words on each side
    assert window.ids[:2] == parts.before[-2:] and window.ids[-2:] == parts.after[:2]
    assert not window.shortened and window.trimmed


def test_far_apart_entities_keep_the_words_next_to_each():
    parts = parts_of([5, 1, 20, 1, 5], 1)
    window = fit_window(parts, 10)  # two marked entities of 3 leave 4 words of the 20 between them
    between = [i for i in window.ids if i in parts.between]
    assert between == parts.between[:2] + parts.between[-2:]
    assert window.shortened and window.ids[window.second_start] == parts.second.open[0]


def test_markers_that_do_not_fit_are_an_error():
    with pytest.raises(BertkitError, match="cannot hold the four entity markers"):
        fit_window(parts_of([0, 5, 5, 5, 0], 4), 12)


def test_share_gives_what_one_side_cannot_take_to_the_other():
    assert share(10, 2, 100) == (2, 8)
    assert share(10, 100, 2) == (8, 2)
    assert share(5, 10, 10) == (3, 2)
    assert share(0, 3, 3) == (0, 0)
