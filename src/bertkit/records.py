"""Plain data that readers produce and tasks consume.

Every reader turns a file into these records; every task turns records into features and back. Nothing
here knows about tokenizers or tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A labelled half-open interval ``[start, end)``; token indices or character offsets by context."""

    start: int
    end: int
    label: str


@dataclass
class TokenExample:
    """One sentence for token classification.

    ``tags`` is None for unlabelled input. ``lines`` holds the 1-based line number of each token in
    ``path`` (so errors and CoNLL outputs can point back at the file). ``text``/``offsets`` are set when
    the tokens were cut out of raw text, so predictions can be reported as character spans.
    Sentences of one document share ``doc_id``; documents are numbered in file order.
    """

    tokens: list[str]
    tags: list[str] | None = None
    doc_id: int = 0
    path: str = ""
    lines: list[int] = field(default_factory=list)
    text: str | None = None
    offsets: list[tuple[int, int]] | None = None

    @property
    def line(self) -> int:
        """Line of the first token (0 when unknown)."""
        return self.lines[0] if self.lines else 0

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Entity:
    """A predicted or gold entity over raw text: character offsets ``[start, end)`` into the text."""

    text: str
    label: str
    start: int
    end: int
    score: float | None = None


@dataclass
class TextExample:
    """One text, or text pair, for sequence classification or regression.

    ``label`` is a class name (single-label), a list of class names (multi-label), a number
    (regression), or None for unlabelled input. ``line`` is the 1-based line of the row in ``path``.
    """

    text: str
    pair: str | None = None
    label: str | list[str] | float | None = None
    path: str = ""
    line: int = 0
