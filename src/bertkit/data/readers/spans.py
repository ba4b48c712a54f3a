"""Read entity-span JSON lines (CLUENER or generic start/end/label) into word-level tagged examples.

The text is cut into words by ``tagged_words`` (a text with Chinese in it one character per word, Latin
runs too), and words are also cut at every entity edge, so no entity is lost to tokenisation; the
examples keep the text and word offsets.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

from bertkit.data import tagschemes
from bertkit.data.readers import TokenCorpus, finish_token_corpus, read_lines, shown
from bertkit.data.readers.jsonl import parse_json_record
from bertkit.data.readers.text import text_example
from bertkit.errors import BadInputError, BadLines
from bertkit.records import Span, TokenExample


class _CharEntity(NamedTuple):
    """A character-level entity ``[start, end)``, the text the file says it covers, and its position as
    the file writes it (CLUENER ends are inclusive), so messages quote the file's own values."""

    start: int
    end: int
    label: str
    given: str | None
    quoted: str

    def describe(self) -> str:
        return f"entity {self.label} {self.quoted}"


def _cluener_entities(label: Any) -> list[_CharEntity]:
    """``{"type": {"entity text": [[start, end_inclusive], ...]}}`` -> character entities."""
    if not isinstance(label, dict) or not all(isinstance(v, dict) for v in label.values()):
        raise ValueError('"label" must map each type to {"entity text": [[start, end], ...]}')
    found = []
    for kind, mentions in label.items():
        for mention, positions in mentions.items():
            if not isinstance(positions, list):
                raise ValueError(f"positions of {shown(mention)} must be a list of [start, end] pairs")
            for pair in positions:
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, int) for p in pair)):
                    raise ValueError(
                        f"positions of {shown(mention)} must be [start, end] pairs, found {shown(pair)}"
                    )
                found.append(_CharEntity(pair[0], pair[1] + 1, kind, mention, f"[{pair[0]}, {pair[1]}]"))
    return found


def _generic_entities(entities: Any) -> list[_CharEntity]:
    """``[{"start": s, "end": e_exclusive, "label": "PER"}, ...]`` -> character entities."""
    found = []
    for item in entities if isinstance(entities, list) else [entities]:
        if not (
            isinstance(item, dict) and isinstance(item.get("start"), int) and isinstance(item.get("end"), int)
        ):
            raise ValueError(
                f'each entity needs integer "start" and "end" and a "label", found {shown(item)}'
            )
        if not isinstance(item.get("label"), str):
            raise ValueError(f'each entity needs a string "label", found {shown(item)}')
        if item.get("text") is not None and not isinstance(item["text"], str):
            raise ValueError(f'an entity\'s "text" must be a string, found {shown(item)}')
        start, end = item["start"], item["end"]
        found.append(_CharEntity(start, end, item["label"], item.get("text"), f"[{start}, {end})"))
    return found


def _char_entities(record: dict[str, Any]) -> list[_CharEntity] | None:
    """The record's entities, or None when it carries no annotation at all (unlabelled)."""
    if "label" in record:
        return _cluener_entities(record["label"])
    if "entities" in record:
        return _generic_entities(record["entities"])
    return None


def _entity_problem(entity: _CharEntity, text: str) -> str | None:
    if not 0 <= entity.start < entity.end <= len(text):
        return f"{entity.describe()} lies outside the text of {len(text)} characters or is empty"
    covered = text[entity.start : entity.end]
    if entity.given is not None and covered != entity.given:
        return f"{entity.describe()} covers {covered!r} but the file says {entity.given!r}"
    return None


def _entity_edges(entities: list[_CharEntity], text: str) -> set[int]:
    """Where words must be cut so that every entity inside the text starts and ends on word edges."""
    return {edge for e in entities if 0 <= e.start < e.end <= len(text) for edge in (e.start, e.end)}


def _word_spans(entities: list[_CharEntity], ex: TokenExample, number: int, bad: BadLines) -> list[Span]:
    """Character entities -> word spans; bad or overlapping entities are reported and left out.

    The words were cut at the entity edges, so each word lies wholly inside or outside each entity;
    spaces at an entity's edges simply belong to no word.
    """
    starts = [start for start, _ in ex.offsets]
    ends = [end for _, end in ex.offsets]
    spans: list[Span] = []
    previous: _CharEntity | None = None
    for entity in sorted(set(entities), key=lambda e: (e.start, e.end, e.label)):
        problem = _entity_problem(entity, ex.text)
        first, stop = bisect_right(ends, entity.start), bisect_left(starts, entity.end)
        if problem is None and first >= stop:
            problem = f"{entity.describe()} = {ex.text[entity.start : entity.end]!r} covers no word"
        if problem is None and spans and first < spans[-1].end:
            problem = f"{entity.describe()} overlaps {previous.describe()}"
        if problem:
            bad.report(number, "bad entities", problem)
            continue
        spans.append(Span(first, stop, entity.label))
        previous = entity
    return spans


def _example(
    record: dict[str, Any], number: int, path: str, scheme: str | None, bad: BadLines
) -> TokenExample | None:
    """One record's example; ``scheme=None`` reads it unlabelled, its entities neither parsed nor checked."""
    text = record.get("text")
    if not isinstance(text, str):
        bad.report(number, "missing keys", "missing string key 'text'")
        return None
    try:
        entities = _char_entities(record) if scheme is not None else None
    except ValueError as err:
        bad.report(number, "bad entities", str(err))
        return None
    if entities is None:
        return text_example(text, path, number)
    ex = text_example(text, path, number, cuts=_entity_edges(entities, text))
    ex.tags = tagschemes.spans_to_tags(_word_spans(entities, ex, number, bad), len(ex), scheme)
    return ex


def read_spans(
    path: str | Path,
    *,
    scheme: str = "iob2",
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
    with_entities: bool = True,
) -> TokenCorpus:
    """Read span JSON lines into word-tagged examples in ``scheme`` (``auto`` means IOB2).

    Two shapes: CLUENER ``{"text": ..., "label": {"type": {"entity text": [[start, end_inclusive]]}}}``
    and generic ``{"text": ..., "entities": [{"start": s, "end": e_exclusive, "label": "PER"}]}``.
    A file whose records have neither ``label`` nor ``entities`` is unlabelled (all or none must have
    them); ``with_entities=False`` reads any file unlabelled, ignoring its entities (for prediction).
    Words are cut at entity edges (``CPL`` in ``CPL2011``). An entity outside the text, whose text differs
    from the text it covers, or overlapping another, is a bad line; in warn mode only that entity is
    dropped (and counted). Messages quote positions as the file gives them (CLUENER ends inclusive).
    """
    path = str(path)
    scheme = "iob2" if scheme == "auto" else scheme
    bad = BadLines(path, on_bad_line)
    tag_scheme = scheme if with_entities else None
    examples: list[TokenExample] = []
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        record = parse_json_record(line, number, bad)
        example = _example(record, number, path, tag_scheme, bad) if record is not None else None
        if example is None:
            continue
        if examples and (example.tags is None) != (examples[0].tags is None):
            bad.report(number, "mixed records", "some records have entities and some not; give all or none")
            continue
        examples.append(example)
    if not examples:
        raise BadInputError(path, 0, "no records found: the file has no valid JSON lines")
    return finish_token_corpus(examples, path, scheme, labels, bad)
