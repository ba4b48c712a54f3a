"""Tests for readers/spans.py: CLUENER and generic entity spans turned into word-level tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.data.readers import read_token_file
from bertkit.data.readers.spans import read_spans
from bertkit.errors import BadInputError

CLUENER = {
    "text": "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。",
    "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}},
}
GENERIC = {
    "text": "John Smith lives in New York.",
    "entities": [{"start": 20, "end": 28, "label": "LOC"}, {"start": 0, "end": 10, "label": "PER"}],
}


def write(tmp_path: Path, *records: dict | str, name: str = "spans.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join((json.dumps(r, ensure_ascii=False) if isinstance(r, dict) else r) + "\n" for r in records)
    )
    return path


def raises_at(path: Path, line: int, fragment: str, **kw) -> None:
    with pytest.raises(BadInputError) as info:
        read_spans(path, **kw)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert fragment in str(info.value)


def test_cluener_chinese_is_tagged_per_character(tmp_path):
    corpus = read_spans(write(tmp_path, CLUENER))
    ex = corpus.examples[0]
    assert corpus.scheme == "iob2"
    assert ex.tokens == list(CLUENER["text"])
    assert ex.offsets[9] == (9, 10)
    assert ex.tags[:5] == ["B-company", "I-company", "I-company", "I-company", "O"]
    assert ex.tags[8:13] == ["O", "B-name", "I-name", "I-name", "O"]
    assert ex.tags.count("O") == len(ex.tokens) - 7
    assert ex.text == CLUENER["text"] and ex.lines[0] == 1


def test_generic_entities_in_the_requested_scheme(tmp_path):
    path = write(tmp_path, GENERIC)
    ex = read_spans(path).examples[0]
    assert ex.tokens == ["John", "Smith", "lives", "in", "New", "York", "."]
    assert ex.tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    corpus = read_spans(path, scheme="bioes")
    assert corpus.scheme == "bioes"
    assert corpus.examples[0].tags == ["B-PER", "E-PER", "O", "O", "B-LOC", "E-LOC", "O"]


def test_read_token_file_detects_spans(tmp_path):
    corpus = read_token_file(write(tmp_path, GENERIC))
    assert corpus.examples[0].tags[0] == "B-PER"


def test_unlabelled_records(tmp_path):
    corpus = read_spans(write(tmp_path, {"text": "我爱北京"}, {"text": ""}))
    assert [ex.tags for ex in corpus.examples] == [None, None]
    assert corpus.examples[0].tokens == ["我", "爱", "北", "京"]


def test_entity_off_word_boundaries_is_an_error(tmp_path):
    record = {"text": "John Smith", "entities": [{"start": 0, "end": 3, "label": "PER"}]}
    raises_at(write(tmp_path, GENERIC, record), 2, "entity PER [0, 3) = 'Joh' does not start and end on word")


def test_cluener_text_mismatch_is_an_error(tmp_path):
    record = {"text": "我爱北京天安门", "label": {"LOC": {"北京": [[3, 4]]}}}
    raises_at(write(tmp_path, record), 1, "covers '京天' but the file says '北京'")


def test_overlapping_entities_are_an_error(tmp_path):
    record = {"text": "我爱北京天安门", "label": {"LOC": {"北京天安门": [[2, 6]]}, "GPE": {"北京": [[2, 3]]}}}
    raises_at(write(tmp_path, record), 1, "overlaps the entity before it")


def test_entity_outside_the_text_is_an_error(tmp_path):
    record = {"text": "ab", "entities": [{"start": 0, "end": 9, "label": "X"}]}
    raises_at(write(tmp_path, record), 1, "lies outside the text of 2 characters")


def test_malformed_label_is_an_error(tmp_path):
    raises_at(write(tmp_path, {"text": "ab", "label": {"X": {"ab": [[0]]}}}), 1, "must be [start, end] pairs")


def test_bad_json_is_an_error(tmp_path):
    raises_at(write(tmp_path, CLUENER, '{"text": '), 2, "not valid JSON")


def test_mixed_labelled_and_unlabelled_records_are_an_error(tmp_path):
    raises_at(write(tmp_path, CLUENER, {"text": "我"}), 2, "some records have entities and some not")


def test_warn_mode_drops_only_the_bad_entity(tmp_path, caplog):
    record = {
        "text": "John Smith in Paris",
        "entities": [{"start": 0, "end": 3, "label": "PER"}, {"start": 14, "end": 19, "label": "LOC"}],
    }
    path = write(tmp_path, record, "{broken", GENERIC)
    corpus = read_spans(path, on_bad_line="warn")
    assert len(corpus.examples) == 2
    assert corpus.examples[0].tags == ["O", "O", "O", "B-LOC"]
    assert f"{path}: 1 line(s) with bad entities (first at line 1)" in caplog.text
    assert f"{path}: 1 line(s) with bad JSON (first at line 2)" in caplog.text
