"""One window per relation, holding both marked entities: the text around them when it fits, the text
next to each entity when they are farther apart than a window holds.

A relation is about one pair of entities, so a long text needs no several windows: the window is
centred on the span from the first opening marker to the last closing one. When that span alone is
longer than the window, the text between the entities is shortened from its middle (the words next to
each entity stay), and when even the two marked entities do not fit, their ends are cut; the opening
markers, whose hidden states represent the pair, are always in the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from bertkit.errors import BertkitError


@dataclass(frozen=True)
class Marked:
    """The sub-words of one argument between its opening and closing marker ids."""

    open: list[int]
    words: list[int]
    close: list[int]

    def ids(self, keep: int | None = None) -> list[int]:
        words = self.words if keep is None else self.words[:keep]
        return [*self.open, *words, *self.close]

    def __len__(self) -> int:
        return len(self.open) + len(self.words) + len(self.close)


@dataclass(frozen=True)
class MarkedParts:
    """A record's sub-words cut at the entity edges, in text order, with the markers around each entity."""

    before: list[int]
    first: Marked
    between: list[int]
    second: Marked
    after: list[int]


@dataclass(frozen=True)
class Window:
    """The sub-words of one window (no special tokens) and where the two opening markers sit in it."""

    ids: list[int]
    first_start: int
    second_start: int
    trimmed: bool  # some text before or after the entities is left out
    shortened: bool  # the entities are farther apart than the window holds: text between them left out


def share(total: int, cap_a: int, cap_b: int) -> tuple[int, int]:
    """``total`` split as evenly as the caps allow, what one side cannot take going to the other."""
    a = min(cap_a, max((total + 1) // 2, total - cap_b))
    return a, min(cap_b, total - a)


def fit_window(parts: MarkedParts, budget: int) -> Window:
    """The window of at most ``budget`` sub-words that keeps the most context around both entities."""
    first, second = parts.first, parts.second
    core = len(first) + len(parts.between) + len(second)
    if core <= budget:
        left, right = share(budget - core, len(parts.before), len(parts.after))
        ids = [
            *parts.before[len(parts.before) - left :],
            *first.ids(),
            *parts.between,
            *second.ids(),
            *parts.after[:right],
        ]
        trimmed = left < len(parts.before) or right < len(parts.after)
        return Window(ids, left, left + len(first) + len(parts.between), trimmed, False)
    if len(first) + len(second) <= budget:
        # the words next to each entity say most about the pair; the middle of a long gap goes
        gap = budget - len(first) - len(second)
        after_first, before_second = share(gap, len(parts.between), len(parts.between))
        between = [*parts.between[:after_first], *parts.between[len(parts.between) - before_second :]]
        return Window([*first.ids(), *between, *second.ids()], 0, len(first) + len(between), True, True)
    markers = len(first.open) + len(first.close) + len(second.open) + len(second.close)
    if markers > budget:
        raise BertkitError(
            f"windows of {budget} sub-words cannot hold the four entity markers ({markers} sub-words): "
            "raise --max-length"
        )
    keep_first, keep_second = share(budget - markers, len(first.words), len(second.words))
    ids = [*first.ids(keep_first), *second.ids(keep_second)]
    return Window(ids, 0, len(first.open) + keep_first + len(first.close), True, True)
