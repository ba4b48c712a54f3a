"""Entity markers: the tokens that open and close the head (e1) and the tail (e2) in the model's input.

Plain markers are ``[E1] [/E1] [E2] [/E2]``; typed ones carry the entity type, ``[E1:PER] [/E1:PER]``
(the typed entity markers of Zhong and Chen 2021), for the types the model was trained on; an
argument without a known type falls back to the plain pair.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from bertkit.records import Argument, RelationExample

PLAIN = ("[E1]", "[/E1]", "[E2]", "[/E2]")


def argument_markers(side: int, kind: str | None = None) -> tuple[str, str]:
    """The opening and closing marker of argument ``side`` (1: head, 2: tail), typed when ``kind``."""
    suffix = f":{kind}" if kind else ""
    return f"[E{side}{suffix}]", f"[/E{side}{suffix}]"


def marker_tokens(types: Iterable[str] = ()) -> list[str]:
    """Every marker a model needs in its vocabulary: the plain four, and four per entity type."""
    tokens = list(PLAIN)
    for kind in types:
        tokens += [*argument_markers(1, kind), *argument_markers(2, kind)]
    return tokens


def markers_of(arg: Argument, side: int, typed: bool, known: Collection[str] | None) -> tuple[str, str]:
    """The markers around ``arg``: typed when asked for and its type is known (``None``: any type)."""
    if typed and arg.type and (known is None or arg.type in known):
        return argument_markers(side, arg.type)
    return argument_markers(side)


def text_segments(record: RelationExample) -> tuple[str, str, str, str, str]:
    """The text cut at the entity edges, in text order: before, first entity, between, second, after."""
    first, second = sorted((record.head, record.tail), key=lambda a: a.start)
    text = record.text
    return (
        text[: first.start],
        text[first.start : first.end],
        text[first.end : second.start],
        text[second.start : second.end],
        text[second.end :],
    )


def marked_text(record: RelationExample, typed: bool = False, known: Collection[str] | None = None) -> str:
    """The record's text with its markers written in, as the model reads it (for display and logs)."""
    before, first, between, second, after = text_segments(record)
    head_first = record.head.start < record.tail.start
    (o1, c1), (o2, c2) = (
        markers_of(record.head, 1, typed, known),
        markers_of(record.tail, 2, typed, known),
    )[:: 1 if head_first else -1]
    return f"{before}{o1}{first}{c1}{between}{o2}{second}{c2}{after}"
