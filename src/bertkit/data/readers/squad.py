"""Read extractive question answering data: SQuAD v1.1/v2.0 JSON, and JSON lines of questions.

Real files carry bad answer offsets (an ``answer_start`` of -1, or one off by a character) while the
answer text is in the context. ``place_answer`` searches for the text near the given offset; every
repair and every answer that cannot be placed is counted and reported in one warning per file, and an
answer that cannot be placed keeps its text for scoring but is never trained on.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.data.readers import json_limit, read_lines, shown
from bertkit.data.readers.jsonl import parse_json_record
from bertkit.errors import BadInputError, BadLines, BertkitError
from bertkit.records import QaAnswer, QaExample

log = logging.getLogger(__name__)

QA_FORMATS = ("auto", "squad", "jsonl")
# a wrong offset is trusted to mean the nearest occurrence of the answer text within this many
# characters; farther away, only an answer text that occurs once in the context is placed
REPAIR_RADIUS = 32
SHOWN_IDS = 5


def place_answer(context: str, text: str, start: int | None) -> tuple[int | None, int | None, str]:
    """Where ``text`` sits in ``context``, given the file's ``start``: ``(start, end, status)``.

    Status ``ok`` (the offset is right), ``repaired`` (the nearest occurrence within REPAIR_RADIUS of a
    wrong offset, or the only occurrence when the offset is missing or far off; a text with spaces
    around it that the context lacks is searched for without them) or ``unplaced`` (not in the
    context, or there several times with no offset to choose between them).
    """
    if start is not None and start >= 0 and context[start : start + len(text)] == text and text.strip():
        return start, start + len(text), "ok"
    for candidate in dict.fromkeys([text, text.strip()]):
        if not candidate.strip():
            continue
        first = context.find(candidate)
        if first < 0:
            continue
        nearest = _nearest(context, candidate, start) if start is not None and start >= 0 else None
        if nearest is not None:
            return nearest, nearest + len(candidate), "repaired"
        if context.find(candidate, first + 1) < 0:  # the only occurrence
            return first, first + len(candidate), "repaired"
        return None, None, "unplaced"
    return None, None, "unplaced"


def _nearest(context: str, part: str, start: int) -> int | None:
    """The occurrence of ``part`` nearest ``start`` within REPAIR_RADIUS (the earlier of two as near).

    Only the window around ``start`` is searched: listing every occurrence would be quadratic for a
    long answer that repeats in a long context ("aaaa...")."""
    stop = start + REPAIR_RADIUS + len(part)
    best, at = None, context.find(part, max(0, start - REPAIR_RADIUS), stop)
    while at >= 0:
        if best is None or abs(at - start) < abs(best - start):
            best = at
        at = context.find(part, at + 1, stop)
    return best


@dataclass
class AnswerRepairs:
    """Counts repaired and unplaced answers of one file, with the first question ids of each."""

    path: str
    counts: Counter = field(default_factory=Counter)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def place(self, qid: str, context: str, text: str, start: int | None) -> QaAnswer:
        begin, end, status = place_answer(context, text, start)
        if status != "ok":
            self.counts[status] += 1
            shown = self.ids.setdefault(status, [])
            if len(shown) < SHOWN_IDS and qid not in shown:
                shown.append(qid)
        return QaAnswer(text, begin, end)

    def warn_summary(self) -> None:
        if self.counts["repaired"]:
            log.warning(
                "%s: %d answer offset(s) did not match the answer text and were repaired by searching "
                "the context (first question ids: %s)",
                self.path,
                self.counts["repaired"],
                ", ".join(self.ids["repaired"]),
            )
        if self.counts["unplaced"]:
            log.warning(
                "%s: %d answer(s) could not be placed in their context (text not found, or found several "
                "times with no usable offset); they are scored against but never trained on (first "
                "question ids: %s)",
                self.path,
                self.counts["unplaced"],
                ", ".join(self.ids["unplaced"]),
            )


def read_qa_file(
    path: str | Path, *, format: str = "auto", labelled: bool = True, on_bad_line: str = "error"
) -> list[QaExample]:
    """Read a SQuAD JSON file (``{"data": [{"paragraphs": [{"context", "qas"}]}]}``, v1.1 or v2.0)
    or JSON lines (``{"id", "question", "context", "answers"}``) into ``QaExample`` records.

    ``format`` is ``auto`` (a JSON document with a ``data`` list is SQuAD, anything else JSON lines),
    ``squad`` or ``jsonl``. ``labelled=False`` leaves the answers out (prediction input). Malformed
    records are errors naming the file and line (or the question's place in the SQuAD tree), or are
    counted and skipped with ``on_bad_line="warn"``. Question ids must be unique within a file.
    """
    path = str(path)
    if format not in QA_FORMATS:
        raise BertkitError(f"question answering reads {' or '.join(QA_FORMATS[1:])} files, not {format!r}")
    bad = BadLines(path, on_bad_line)
    repairs = AnswerRepairs(path)
    lines = read_lines(path)
    document = squad_document(lines, path) if format != "jsonl" else None
    if format == "squad" and document is None:
        raise BadInputError(path, 0, 'not a SQuAD file: expected a JSON object with a "data" list')
    reader = SquadReader(path, bad, repairs, labelled)
    if document is not None:
        examples = reader.read_document(document, "\n".join(lines))
    else:
        examples = reader.read_lines(lines)
    if not examples:
        raise BadInputError(path, 0, "no questions found")
    bad.warn_summary()
    repairs.warn_summary()
    impossible = sum(ex.is_impossible for ex in examples)
    log.info(
        "%s: %d questions on %d contexts, %d without an answer",
        path,
        len(examples),
        len({ex.context for ex in examples}),
        impossible,
    )
    return examples


def squad_document(lines: list[str], path: str) -> dict | None:
    """The file as one SQuAD JSON document, or None when it is JSON lines."""
    text = "\n".join(lines)
    if not text.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(text)
    except (RecursionError, ValueError) as err:  # a JSONDecodeError is a ValueError
        first = next((line for line in lines if line.strip()), "")
        try:
            json.loads(first)
            return None  # a JSON object per line
        except (RecursionError, ValueError):
            if isinstance(err, json.JSONDecodeError):
                message, line = f"{err.msg} at column {err.colno}", err.lineno
            else:
                message, line = json_limit(err), 0  # the whole document: json.loads does not say where
            raise BadInputError(path, line, f"not valid JSON ({message})") from None
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return document
    return None  # a one-line JSON lines file


class SquadReader:
    """Turns SQuAD articles or JSON-lines records into examples, reporting what is malformed."""

    def __init__(self, path: str, bad: BadLines, repairs: AnswerRepairs, labelled: bool):
        self.path, self.bad, self.repairs, self.labelled = path, bad, repairs, labelled
        self.seen: set[str] = set()

    def read_document(self, document: dict, text: str) -> list[QaExample]:
        examples = []
        lines = LineFinder(text)
        for a, article in enumerate(document["data"]):
            paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
            if not isinstance(paragraphs, list):
                self.bad.report(0, "bad records", f'data[{a}]: expected an object with a "paragraphs" list')
                continue
            title = plain_title(article.get("title"))
            for p, paragraph in enumerate(paragraphs):
                where = f"data[{a}].paragraphs[{p}]"
                context = paragraph.get("context") if isinstance(paragraph, dict) else None
                qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
                if not isinstance(context, str) or not isinstance(qas, list):
                    self.bad.report(
                        0, "bad records", f'{where}: expected a "context" string and a "qas" list'
                    )
                    continue
                for q, qa in enumerate(qas):
                    line = lines.line_of(qa.get("id")) if isinstance(qa, dict) else 0
                    example = self.example(qa, context, title, line, f"{where}.qas[{q}]")
                    if example is not None:
                        examples.append(example)
        return examples

    def read_lines(self, lines: list[str]) -> list[QaExample]:
        examples = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            record = parse_json_record(line, number, self.bad)
            if record is None:
                continue
            context = record.get("context")
            if not isinstance(context, str):
                self.bad.report(number, "missing keys", 'missing string key "context"')
                continue
            record.setdefault("id", str(number))  # no id: the line number names the question
            example = self.example(record, context, plain_title(record.get("title")), number, "")
            if example is not None:
                examples.append(example)
        return examples

    def example(self, qa: Any, context: str, title: str, line: int, where: str) -> QaExample | None:
        """One question, or None after reporting what is wrong with it."""
        prefix = f"{where}: " if where else ""
        if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
            self.bad.report(line, "bad records", f'{prefix}expected an object with a "question" string')
            return None
        if not isinstance(qa.get("id"), (str, int)) or isinstance(qa.get("id"), bool):
            self.bad.report(line, "bad records", f'{prefix}expected a string "id"')
            return None
        qid = str(qa["id"])
        if qid in self.seen:
            self.bad.report(line, "duplicate ids", f"{prefix}question id {qid!r} was used before")
            return None
        answers = None
        if self.labelled and ("answers" in qa or qa.get("is_impossible")):
            try:
                answers = [] if qa.get("is_impossible") else self.answers(qa["answers"], qid, context)
            except ValueError as err:
                self.bad.report(line, "bad answers", f"{prefix}question {qid!r}: {err}")
                return None
        self.seen.add(qid)
        return QaExample(qid, qa["question"], context, answers, title, self.path, line)

    def answers(self, given: Any, qid: str, context: str) -> list[QaAnswer]:
        """``[{"text", "answer_start"}]``, ``{"text": [...], "answer_start": [...]}`` or ``["text"]``."""
        if isinstance(given, dict) and isinstance(given.get("text"), list):
            starts = given.get("answer_start") or [None] * len(given["text"])
            if not isinstance(starts, list):
                raise ValueError(
                    f'"answer_start" must be a list beside a list of texts, found {shown(starts)}'
                )
            if len(starts) != len(given["text"]):
                raise ValueError(f"{len(given['text'])} answer texts but {len(starts)} answer_start values")
            given = [{"text": t, "answer_start": s} for t, s in zip(given["text"], starts)]
        if not isinstance(given, list):
            raise ValueError('"answers" must be a list of {"text": ..., "answer_start": ...} objects')
        out = []
        for item in given:
            text, start = (item, None) if isinstance(item, str) else answer_fields(item)
            out.append(self.repairs.place(qid, context, text, start))
        return out


def plain_title(title: Any) -> str:
    """The title as text; a title that is a list or an object (str() of a deeply nested one would
    overflow the stack) counts as none."""
    return str(title) if isinstance(title, (str, int, float)) else ""


def answer_fields(item: Any) -> tuple[str, int | None]:
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise ValueError(f'each answer needs a "text" string, found {shown(item)}')
    start = item.get("answer_start")
    if start is not None and (not isinstance(start, int) or isinstance(start, bool)):
        raise ValueError(f'"answer_start" must be an integer, found {shown(start)}')
    return item["text"], start


# `"id": "56be4db0acb8001400a502ec"` or `"id": 7`, as a SQuAD file writes a question's id
_ID_KEY = re.compile(r'"id"\s*:\s*("(?:[^"\\\n]|\\.)*"|-?\d+)')


class LineFinder:
    """Lines of question ids in a SQuAD file: one pass finds every ``"id": value``, and each question
    takes the first line of its id not yet taken (ids come in file order).

    Searching the text for each id instead costs a scan of the rest of the file per id that is written
    differently (``"\\u00e9"`` for ``"é"``): quadratic on a large file."""

    def __init__(self, text: str):
        self.lines: dict[tuple[bool, Any], deque[int]] = {}
        line, at = 1, 0
        for match in _ID_KEY.finditer(text):
            line += text.count("\n", at, match.start())
            at = match.start()
            try:
                value = json.loads(match.group(1))
            except ValueError:  # a number of more digits than int() reads
                continue
            self.lines.setdefault((isinstance(value, str), value), deque()).append(line)

    def line_of(self, qid: Any) -> int:
        """The line of the next ``"id": qid`` in the file (0 when there is none left)."""
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            return 0
        found = self.lines.get((isinstance(qid, str), qid))
        return found.popleft() if found else 0
