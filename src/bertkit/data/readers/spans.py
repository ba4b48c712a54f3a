"""Read entity-span JSON lines (CLUENER or generic start/end/label) into word-level tagged examples.

The text is cut into words by ``split_words`` (Chinese one character per word) and each entity must
start and end on word boundaries; the examples keep the text and the word offsets.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from bertkit.data import tagschemes
from bertkit.data.readers import TokenCorpus, finish_token_corpus, read_lines
from bertkit.data.readers.jsonl import parse_json_record
from bertkit.data.readers.text import text_example
from bertkit.errors import BadInputError, BadLines
from bertkit.records import Span, TokenExample

# A character-level entity as the file gives it: [start, end), label, and the text the file says it covers.
_CharEntity = tuple[int, int, str, "str | None"]


def _cluener_entities(label: Any) -> list[_CharEntity]:
    """``{"type": {"entity text": [[start, end_inclusive], ...]}}`` -> character entities."""
    if not isinstance(label, dict) or not all(isinstance(v, dict) for v in label.values()):
        raise ValueError('"label" must map each type to {"entity text": [[start, end], ...]}')
    found = []
    for kind, mentions in label.items():
        for mention, positions in mentions.items():
            for pair in positions:
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, int) for p in pair)):
                    raise ValueError(f"positions of {mention!r} must be [start, end] pairs, found {pair!r}")
                found.append((pair[0], pair[1] + 1, kind, mention))
    return found


def _generic_entities(entities: Any) -> list[_CharEntity]:
    """``[{"start": s, "end": e_exclusive, "label": "PER"}, ...]`` -> character entities."""
    found = []
    for item in entities if isinstance(entities, list) else [entities]:
        if not (
            isinstance(item, dict) and isinstance(item.get("start"), int) and isinstance(item.get("end"), int)
        ):
            raise ValueError(f'each entity needs integer "start" and "end" and a "label", found {item!r}')
        if not isinstance(item.get("label"), str):
            raise ValueError(f'each entity needs a string "label", found {item!r}')
        found.append((item["start"], item["end"], item["label"], item.get("text")))
    return found


def _char_entities(record: dict[str, Any]) -> list[_CharEntity] | None:
    """The record's entities, or None when it carries no annotation at all (unlabelled)."""
    if "label" in record:
        return _cluener_entities(record["label"])
    if "entities" in record:
        return _generic_entities(record["entities"])
    return None


def _entity_problem(entity: _CharEntity, text: str, starts: dict, ends: dict) -> str | None:
    start, end, label, given = entity
    where = f"entity {label} [{start}, {end})"
    if not 0 <= start < end <= len(text):
        return f"{where} lies outside the text of {len(text)} characters or is empty"
    if given is not None and text[start:end] != given:
        return f"{where} covers {text[start:end]!r} but the file says {given!r}"
    if start not in starts or end not in ends:
        return f"{where} = {text[start:end]!r} does not start and end on word boundaries"
    return None


def _word_spans(entities: list[_CharEntity], ex: TokenExample, number: int, bad: BadLines) -> list[Span]:
    """Character entities -> word spans; bad or overlapping entities are reported and left out."""
    starts = {s: i for i, (s, _) in enumerate(ex.offsets)}
    ends = {e: i + 1 for i, (_, e) in enumerate(ex.offsets)}
    spans: list[Span] = []
    for entity in sorted(set(entities), key=lambda e: (e[0], e[1], e[2])):
        problem = _entity_problem(entity, ex.text, starts, ends)
        if problem is None and spans and starts[entity[0]] < spans[-1].end:
            problem = f"entity {entity[2]} [{entity[0]}, {entity[1]}) overlaps the entity before it"
        if problem:
            bad.report(number, "bad entities", problem)
            continue
        spans.append(Span(starts[entity[0]], ends[entity[1]], entity[2]))
    return spans


def _example(
    record: dict[str, Any], number: int, path: str, scheme: str, bad: BadLines
) -> TokenExample | None:
    text = record.get("text")
    if not isinstance(text, str):
        bad.report(number, "missing keys", "missing string key 'text'")
        return None
    try:
        entities = _char_entities(record)
    except ValueError as err:
        bad.report(number, "bad entities", str(err))
        return None
    ex = text_example(text, path, number)
    if entities is not None:
        spans = _word_spans(entities, ex, number, bad)
        ex.tags = tagschemes.spans_to_tags(spans, len(ex), scheme)
    return ex


def read_spans(
    path: str | Path,
    *,
    scheme: str = "iob2",
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
) -> TokenCorpus:
    """Read span JSON lines into word-tagged examples in ``scheme`` (``auto`` means IOB2).

    Two shapes: CLUENER ``{"text": ..., "label": {"type": {"entity text": [[start, end_inclusive]]}}}``
    and generic ``{"text": ..., "entities": [{"start": s, "end": e_exclusive, "label": "PER"}]}``.
    A file whose records have neither ``label`` nor ``entities`` is unlabelled (all or none must have
    them). An entity off word boundaries, whose text differs from the text it covers, or overlapping
    another, is a bad line; in warn mode only that entity is dropped (and counted).
    """
    path = str(path)
    scheme = "iob2" if scheme == "auto" else scheme
    bad = BadLines(path, on_bad_line)
    examples: list[TokenExample] = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        record = parse_json_record(line, number, bad)
        example = _example(record, number, path, scheme, bad) if record is not None else None
        if example is None:
            continue
        if examples and (example.tags is None) != (examples[0].tags is None):
            bad.report(number, "mixed records", "some records have entities and some not; give all or none")
            continue
        examples.append(example)
    if not examples:
        raise BadInputError(path, 0, "no records found: the file has no valid JSON lines")
    return finish_token_corpus(examples, path, scheme, labels, bad)
