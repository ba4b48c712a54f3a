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
    record_line: int = 0  # the record's line when it has no token to carry one (a blank text line)

    @property
    def line(self) -> int:
        """Line of the first token, or the record's own (0 when unknown)."""
        return self.lines[0] if self.lines else self.record_line

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


@dataclass(frozen=True)
class QaAnswer:
    """A gold answer: its text as the file gives it, and the characters ``[start, end)`` of the context
    it was found at (None: it could not be placed). The span can be shorter than the text when the
    file's text has spaces around it that the context has not."""

    text: str
    start: int | None
    end: int | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is None:
            object.__setattr__(self, "end", self.start + len(self.text))


@dataclass
class QaExample:
    """One question about one context.

    ``answers`` is None for unlabelled input and ``[]`` for a question without an answer (SQuAD
    v2.0's ``is_impossible``). ``line`` is the 1-based line of the record in ``path`` (JSON lines; for
    SQuAD JSON the line of the question's id, 0 when unknown).
    """

    id: str
    question: str
    context: str
    answers: list[QaAnswer] | None = None
    title: str = ""
    path: str = ""
    line: int = 0

    @property
    def is_impossible(self) -> bool:
        return self.answers is not None and not self.answers

    @property
    def placed(self) -> list[QaAnswer]:
        """The answers whose position in the context is known (what training can use)."""
        return [a for a in self.answers or () if a.start is not None]


@dataclass(frozen=True)
class Argument:
    """One side of a relation: characters ``[start, end)`` of the record's text, and its type if known."""

    start: int
    end: int
    type: str | None = None


@dataclass
class RelationExample:
    """A text, the two entities a relation holds between (head = e1, tail = e2) and its label.

    ``label`` is None for unlabelled input; ``id`` is the data set's own id (SemEval's sentence number);
    ``line`` is the 1-based line of the record in ``path``.
    """

    text: str
    head: Argument
    tail: Argument
    label: str | None = None
    id: str | None = None
    path: str = ""
    line: int = 0


@dataclass
class Seq2SeqExample:
    """A source text and the texts it should become (summary, translation, next dialogue turn).

    ``targets`` is None for unlabelled input, else one or more references (SciTLDR's dev and test have
    several; training uses the first). ``control`` is an optional code that steers the output (a style,
    a length bucket, an intent): it becomes a token prepended to the source. ``id`` is the data set's
    own id when it has one (a paper id, ``conversation/turn``); ``line`` is the 1-based line of the
    record in ``path``.
    """

    source: str
    targets: list[str] | None = None
    control: str | None = None
    id: str | None = None
    path: str = ""
    line: int = 0

    @property
    def target(self) -> str | None:
        """The reference trained on: the first one."""
        return self.targets[0] if self.targets else None
