"""What a relation prediction looks like outside: a result with ``to_dict()``, and SemEval's answer
file (``id<TAB>label`` per line), which the official Perl scorer reads."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from bertkit.atomic import atomic_path
from bertkit.records import Argument, RelationExample


@dataclass
class RelationResult:
    """The relation predicted between the head and the tail of a text, its probability and every
    label's; ``shortened`` when the entities were farther apart than one window holds."""

    text: str
    head: Argument
    tail: Argument
    label: str
    score: float
    probs: dict[str, float]
    shortened: bool = False
    id: str | None = None

    @classmethod
    def of(
        cls, record: RelationExample, label: str, score: float, probs: dict[str, float], shortened: bool
    ) -> RelationResult:
        return cls(record.text, record.head, record.tail, label, score, probs, shortened, record.id)

    def to_dict(self) -> dict[str, Any]:
        def span(arg: Argument) -> dict[str, Any]:
            out = {"start": arg.start, "end": arg.end, "text": self.text[arg.start : arg.end]}
            return {**out, "type": arg.type} if arg.type else out

        ident = {} if self.id is None else {"id": self.id}
        return {
            **ident,
            "text": self.text,
            "head": span(self.head),
            "tail": span(self.tail),
            "label": self.label,
            "score": round(self.score, 6),
            "probs": {label: round(p, 6) for label, p in self.probs.items()},
            "shortened": self.shortened,
        }


class SemEvalAnswerWriter:
    """``id<TAB>label`` lines in input order (the record's line number when it has no id)."""

    def __init__(self, out: str):
        self.out = out
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> SemEvalAnswerWriter:
        tmp = self._stack.enter_context(atomic_path(self.out))
        self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))
        return self

    def write(self, record: RelationExample, prediction: Any) -> None:
        self._file.write(f"{record.id if record.id is not None else record.line}\t{prediction.label}\n")

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
