"""Relation examples (a text, two entity spans, a label) and their two readers: SemEval-2010 Task 8
blocks with inline ``<e1>``/``<e2>`` tags, and JSON lines with character offsets.

SemEval-2010 Task 8 (``TRAIN_FILE.TXT``, ``TEST_FILE_FULL.TXT``): blocks of ``id<TAB>"sentence"``, a
label line (``Cause-Effect(e2,e1)``, ``Other``), a ``Comment:`` line and a blank line; only the outermost
quotes are stripped. Unlabelled files (``TEST_FILE.txt``) hold the sentence lines alone.
``TEST_FILE_KEY.TXT`` (labels without direction, no sentences) is refused with a pointer to the full file.

JSON lines, one relation per line::

    {"text": "Alice works for Acme.", "head": {"start": 0, "end": 5, "type": "PER"},
     "tail": {"start": 16, "end": 20, "type": "ORG", "text": "Acme"}, "label": "employee_of", "id": "7"}

``start``/``end`` are character offsets, ``end`` exclusive; ``type`` and ``text`` (checked against the
span) are optional, as are ``label`` (all records or none) and ``id``. ``head`` is marked as e1, ``tail``
as e2, so a directed label ``R(e1,e2)`` reads "head R tail" (SemEval's e1 is head). A span outside its
text, an empty one, or head and tail overlapping is a bad line, like malformed JSON.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.data.readers import read_lines, shown
from bertkit.data.readers.jsonl import parse_json_record
from bertkit.errors import BadInputError, BadLines
from bertkit.records import Argument, RelationExample

SEMEVAL_TAGS = ("<e1>", "</e1>", "<e2>", "</e2>")
_SENTENCE = re.compile(r'^(\S+)\t"(.*)"\s*$')
_KEY_LINE = re.compile(r"^\S+\t[^\"]\S*\s*$")  # `8001<TAB>Message-Topic`: an answer key, not sentences


def span_problem(text: str, head: Argument, tail: Argument) -> str | None:
    """What is wrong with the two spans over ``text`` (None when both are fine)."""
    for name, arg in (("head", head), ("tail", tail)):
        if not 0 <= arg.start < arg.end <= len(text):
            return (
                f"{name} span [{arg.start}, {arg.end}) lies outside the text of {len(text)} characters "
                "or is empty"
            )
    if head.start < tail.end and tail.start < head.end:
        return f"head [{head.start}, {head.end}) and tail [{tail.start}, {tail.end}) overlap"
    return None


def strip_tags(marked: str, tags: tuple[str, str, str, str] = SEMEVAL_TAGS) -> tuple[str, Argument, Argument]:
    """The text without its entity tags, and the head (e1) and tail (e2) spans in it.

    ``tags`` are the opening and closing tags of e1, then of e2; each must occur exactly once, opened
    before it is closed, the two not overlapping. Raises ValueError saying what is wrong.
    """
    pattern = re.compile("|".join(re.escape(t) for t in tags))
    found: dict[str, int] = {}  # tag -> its offset in the text without tags
    pieces, last, length = [], 0, 0
    for match in pattern.finditer(marked):
        tag = match.group()
        if tag in found:
            raise ValueError(f"{tag} occurs more than once")
        pieces.append(marked[last : match.start()])
        length += match.start() - last
        last = match.end()
        found[tag] = length
    missing = [t for t in tags if t not in found]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} in the sentence")
    text = "".join([*pieces, marked[last:]])
    head = Argument(found[tags[0]], found[tags[1]])
    tail = Argument(found[tags[2]], found[tags[3]])
    if not (head.start < head.end and tail.start < tail.end):
        raise ValueError("an entity is empty or closed before it is opened")
    problem = span_problem(text, head, tail)
    if problem:
        raise ValueError(problem)
    return text, head, tail


def insert_tags(
    text: str, head: Argument, tail: Argument, tags: tuple[str, str, str, str] = SEMEVAL_TAGS
) -> str:
    """``text`` with the head wrapped in the first two ``tags`` and the tail in the last two."""
    # at one position a closing tag comes first: `<e1>a</e1><e2>b</e2>`, never `<e1>a<e2></e1>b</e2>`
    cuts = sorted(
        [(head.start, 1, tags[0]), (head.end, 0, tags[1]), (tail.start, 1, tags[2]), (tail.end, 0, tags[3])]
    )
    out, last = [], 0
    for position, _, tag in cuts:
        out += [text[last:position], tag]
        last = position
    return "".join([*out, text[last:]])


@dataclass
class _Block:
    """A SemEval block being read: the sentence line, then its label line."""

    example: RelationExample | None  # None: its sentence was bad and skipped (warn mode)
    labelled: bool = False


def read_semeval(
    path: str | Path,
    *,
    labelled: bool = True,
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
) -> list[RelationExample]:
    """Read SemEval-2010 Task 8 blocks (or, with ``labelled=False``, sentence lines alone).

    ``labels``, when given, is the label set: another label is a bad line. Labels are kept as written,
    direction included. A bad block is an error naming its line, or with ``on_bad_line="warn"`` skipped
    and counted.
    """
    path = str(path)
    bad = BadLines(path, on_bad_line)
    blocks: list[_Block] = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        sentence = _SENTENCE.match(line)
        if sentence:
            blocks.append(_Block(_semeval_example(sentence, path, number, bad)))
        elif line.startswith("Comment:"):
            if not blocks:
                bad.report(number, "stray lines", "a Comment: line before any sentence")
        elif not blocks or blocks[-1].labelled:
            hint = " (an answer key? use TEST_FILE_FULL.TXT, whose blocks hold the sentences)"
            where = hint if _KEY_LINE.match(line) else ""
            bad.report(number, "stray lines", f'expected id<TAB>"sentence", found {line[:60]!r}{where}')
        else:
            blocks[-1].labelled = True
            if labelled and blocks[-1].example is not None:
                blocks[-1].example.label = _checked_label(line.strip(), labels, number, bad)
    examples = [b.example for b in blocks if b.example is not None]
    if labelled:
        for example in examples:
            if example.label is None:
                message = "no label line after this sentence (an unlabelled file? it can only be predicted)"
                bad.report(example.line, "unlabelled sentences", message)
        examples = [e for e in examples if e.label is not None]
    bad.warn_summary()
    if not examples:
        raise BadInputError(path, 0, 'no relations found: expected blocks of id<TAB>"sentence" and a label')
    return examples


def _semeval_example(sentence: re.Match, path: str, number: int, bad: BadLines) -> RelationExample | None:
    try:
        text, head, tail = strip_tags(sentence.group(2))
    except ValueError as err:
        bad.report(number, "bad entity tags", f"{err} (expected <e1>...</e1> and <e2>...</e2> once each)")
        return None
    return RelationExample(text, head, tail, id=sentence.group(1), path=path, line=number)


def _checked_label(label: str, labels: Collection[str] | None, number: int, bad: BadLines) -> str | None:
    if labels is not None and label not in labels:
        shown = ", ".join(sorted(labels)[:20])
        bad.report(number, "unknown labels", f"label {label!r} is not among the training labels: {shown}")
        return None
    return label


def read_relation_jsonl(
    path: str | Path,
    *,
    labelled: bool = True,
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
) -> list[RelationExample]:
    """Read relation JSON lines (the schema in the module docstring).

    With ``labelled=True`` every record needs a string ``label`` (from ``labels`` when given); with
    ``labelled=False`` labels are ignored. Blank lines are skipped.
    """
    path = str(path)
    bad = BadLines(path, on_bad_line)
    examples = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        record = parse_json_record(line, number, bad)
        example = _json_example(record, path, number, bad) if record is not None else None
        if example is None:
            continue
        if labelled:
            label = record.get("label")
            if not isinstance(label, str) or not label:
                bad.report(number, "missing labels", f'expected a string "label", found {shown(label)}')
                continue
            example.label = _checked_label(label, labels, number, bad)
            if example.label is None:
                continue
        examples.append(example)
    bad.warn_summary()
    if not examples:
        raise BadInputError(path, 0, "no relations found: the file has no valid JSON lines")
    return examples


def _json_example(record: dict[str, Any], path: str, number: int, bad: BadLines) -> RelationExample | None:
    try:
        example = parse_relation(record)
    except ValueError as err:
        bad.report(number, "bad entities", str(err))
        return None
    example.path, example.line = path, number
    return example


def parse_relation(record: dict[str, Any]) -> RelationExample:
    """The unlabelled example of one JSON record (the schema above); ValueError says what is wrong."""
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("missing string key 'text'")
    head, tail = _argument(record, "head", text), _argument(record, "tail", text)
    problem = span_problem(text, head, tail)
    if problem:
        raise ValueError(problem)
    given_id = record.get("id")
    if given_id is not None and (not isinstance(given_id, (str, int)) or isinstance(given_id, bool)):
        raise ValueError(f'"id" must be a string or an integer, found {shown(given_id)}')
    return RelationExample(text, head, tail, id=None if given_id is None else str(given_id))


def _argument(record: dict[str, Any], key: str, text: str) -> Argument:
    value = record.get(key)
    if not (
        isinstance(value, dict)
        and isinstance(value.get("start"), int)
        and isinstance(value.get("end"), int)
        and not isinstance(value.get("start"), bool)
        and not isinstance(value.get("end"), bool)
    ):
        raise ValueError(f'"{key}" must be {{"start": int, "end": int, ...}}, found {shown(value)}')
    kind = value.get("type")
    if kind is not None and not isinstance(kind, str):
        raise ValueError(f'"{key}" type must be a string, found {shown(kind)}')
    arg = Argument(value["start"], value["end"], kind or None)
    given = value.get("text")
    if given is not None and 0 <= arg.start < arg.end <= len(text) and text[arg.start : arg.end] != given:
        covered = text[arg.start : arg.end]
        raise ValueError(
            f"{key} [{arg.start}, {arg.end}) covers {covered!r} but the file says {shown(given)}"
        )
    return arg
