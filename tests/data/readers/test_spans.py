"""Tests for readers/spans.py: CLUENER and generic entity spans turned into word-level tags."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bertkit.data import tagschemes
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


def char_entities(ex) -> list[tuple[str, str]]:
    """The example's tagged entities as (text, label), read back through the word offsets."""
    spans = tagschemes.tags_to_spans(ex.tags, "iob2")
    return [(ex.text[ex.offsets[sp.start][0] : ex.offsets[sp.end - 1][1]], sp.label) for sp in spans]


def cluener(text: str, **entities: str) -> dict:
    """A CLUENER record with one mention of each ``label=entity text`` (inclusive ends, as CLUENER)."""
    label = {}
    for kind, mention in entities.items():
        start = text.index(mention)
        label[kind] = {mention: [[start, start + len(mention) - 1]]}
    return {"text": text, "label": label}


def test_chinese_text_is_cut_per_character_latin_runs_too(tmp_path):
    # "CPL2011" and "vsac" would be single words for BERT; Chinese NER tags every character instead.
    records = [
        cluener("中国足球CPL2011赛季开幕", game="CPL"),
        cluener("意甲联赛vsac米兰的比赛", organization="ac米兰"),
        cluener("他买了iPhone12 手机", product="iPhone12"),
    ]
    corpus = read_spans(write(tmp_path, *records))
    found = [char_entities(ex) for ex in corpus.examples]
    assert found == [[("CPL", "game")], [("ac米兰", "organization")], [("iPhone12", "product")]]
    first, second = corpus.examples[0], corpus.examples[1]
    assert first.tokens[4:8] == ["C", "P", "L", "2"]
    assert first.tags[4:8] == ["B-game", "I-game", "I-game", "O"]
    assert second.tokens[4:7] == ["v", "s", "a"] and second.tags[5:7] == ["O", "B-organization"]
    assert " " not in corpus.examples[2].tokens  # separators belong to no word
    # prediction over the raw texts sees exactly the words training saw
    unlabelled = read_spans(write(tmp_path, *records, name="raw.jsonl"), with_entities=False)
    assert [ex.tokens for ex in unlabelled.examples] == [ex.tokens for ex in corpus.examples]
    for ex in corpus.examples:
        assert all(ex.text[s:e] == token for token, (s, e) in zip(ex.tokens, ex.offsets))


def test_entities_ending_inside_english_words_split_the_word(tmp_path):
    text = "U.S.-based Germans met NATOs chief"
    entities = [(0, 4, "LOC"), (11, 17, "MISC"), (23, 27, "ORG")]  # "U.S.", "German", "NATO"
    record = {"text": text, "entities": [{"start": s, "end": e, "label": k} for s, e, k in entities]}
    ex = read_spans(write(tmp_path, record)).examples[0]
    assert char_entities(ex) == [("U.S.", "LOC"), ("German", "MISC"), ("NATO", "ORG")]
    assert ex.tokens == ["U", ".", "S", ".", "-", "based", "German", "s", "met", "NATO", "s", "chief"]


def test_spaces_at_entity_edges_belong_to_no_word(tmp_path):
    record = {"text": "in New York now", "entities": [{"start": 2, "end": 12, "label": "LOC"}]}
    ex = read_spans(write(tmp_path, record)).examples[0]
    assert char_entities(ex) == [("New York", "LOC")]
    blank = {"text": "a   b", "entities": [{"start": 1, "end": 4, "label": "X"}]}
    raises_at(write(tmp_path, blank), 1, "entity X [1, 4) = '   ' covers no word")


def read_spans_of(record: dict):
    """Read one record without a pytest tmp_path (hypothesis runs many examples in one test)."""
    with tempfile.TemporaryDirectory() as tmp:
        return read_spans(write(Path(tmp), record)).examples[0]


_SEPARATOR = " \t\u3000\u200b"
_CHARS = "ab1Z2.-'中国米兰é" + _SEPARATOR


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=_CHARS, min_size=1, max_size=30), st.lists(st.integers(0, 30), max_size=8))
@example("中国CPL2011赛季", [2, 5])
def test_every_entity_comes_back_exactly_through_the_word_offsets(text, cuts):
    points = sorted({c for c in cuts if c <= len(text)})
    entities = [
        (s, e)
        for s, e in zip(points[::2], points[1::2])
        if s < e and text[s] not in _SEPARATOR and text[e - 1] not in _SEPARATOR
    ]
    record = {"text": text, "entities": [{"start": s, "end": e, "label": "X"} for s, e in entities]}
    ex = read_spans_of(record)
    assert char_entities(ex) == [(text[s:e], "X") for s, e in entities]
    assert all(ex.text[s:e] == token for token, (s, e) in zip(ex.tokens, ex.offsets))


def test_unlabelled_reading_ignores_entities(tmp_path):
    # predict reads with tag_column=None: entities are not needed, so bad ones must not stop it.
    outside = {"text": "ab", "entities": [{"start": 0, "end": 9, "label": "X"}]}
    path = write(tmp_path, CLUENER, outside, {"text": "我"}, {"text": "cd", "label": "not a dict"})
    corpus = read_token_file(path, tag_column=None)
    assert [ex.tags for ex in corpus.examples] == [None] * 4
    assert corpus.examples[0].tokens == list(CLUENER["text"])
    # Words are cut as for raw text: prediction sees what `predict` on plain text would.
    english = write(tmp_path, {"text": "Germans met", "entities": [{"start": 0, "end": 6, "label": "X"}]})
    assert read_spans(english, with_entities=False).examples[0].tokens == ["Germans", "met"]


def test_cluener_text_mismatch_is_an_error(tmp_path):
    record = {"text": "我爱北京天安门", "label": {"LOC": {"北京": [[3, 4]]}}}
    # The position as the file gives it: CLUENER's end is inclusive.
    raises_at(write(tmp_path, record), 1, "entity LOC [3, 4] covers '京天' but the file says '北京'")


def test_overlapping_entities_are_an_error(tmp_path):
    record = {"text": "我爱北京天安门", "label": {"LOC": {"北京天安门": [[2, 6]]}, "GPE": {"北京": [[2, 3]]}}}
    raises_at(write(tmp_path, record), 1, "entity LOC [2, 6] overlaps entity GPE [2, 3]")


def test_entity_outside_the_text_is_an_error(tmp_path):
    record = {"text": "ab", "entities": [{"start": 0, "end": 9, "label": "X"}]}
    raises_at(write(tmp_path, record), 1, "entity X [0, 9) lies outside the text of 2 characters")
    inclusive = {"text": "ab", "label": {"X": {"ab": [[0, 2]]}}}
    raises_at(write(tmp_path, inclusive), 1, "entity X [0, 2] lies outside the text of 2 characters")


def test_malformed_label_is_an_error(tmp_path):
    raises_at(write(tmp_path, {"text": "ab", "label": {"X": {"ab": [[0]]}}}), 1, "must be [start, end] pairs")


def test_bad_json_is_an_error(tmp_path):
    raises_at(write(tmp_path, CLUENER, '{"text": '), 2, "not valid JSON")


def test_mixed_labelled_and_unlabelled_records_are_an_error(tmp_path):
    raises_at(write(tmp_path, CLUENER, {"text": "我"}), 2, "some records have entities and some not")


def test_warn_mode_drops_only_the_bad_entity(tmp_path, caplog):
    record = {
        "text": "John Smith in Paris",
        "entities": [{"start": 0, "end": 30, "label": "PER"}, {"start": 14, "end": 19, "label": "LOC"}],
    }
    path = write(tmp_path, record, "{broken", GENERIC)
    corpus = read_spans(path, on_bad_line="warn")
    assert len(corpus.examples) == 2
    assert corpus.examples[0].tags == ["O", "O", "O", "B-LOC"]
    assert f"{path}: 1 line(s) with bad entities (first at line 1)" in caplog.text
    assert f"{path}: 1 line(s) with bad JSON (first at line 2)" in caplog.text


WEIBO = SHARED_DATA / "weibo_ner"


@pytest.mark.parametrize("split", ["train", "dev"])
def test_real_chinese_entities_are_never_dropped(tmp_path, split):
    # No CLUENER copy is shared; Weibo NER has the same traps (Latin and digits against Chinese).
    # Its gold entities, written in CLUENER's shape, must all come back, read strictly.
    source = WEIBO / f"weiboNER_2nd_conll.{split}"
    if not source.exists():
        pytest.skip(f"shared data not available: {source}")
    sentences = read_token_file(source, strip_position_suffix=True, on_bad_line="warn").examples
    records, gold = [], []
    for ex in sentences:
        text, starts = "".join(ex.tokens), [sum(map(len, ex.tokens[:i])) for i in range(len(ex) + 1)]
        label: dict = {}
        for sp in tagschemes.tags_to_spans(ex.tags, "iob2"):
            start, end = starts[sp.start], starts[sp.end]
            label.setdefault(sp.label, {}).setdefault(text[start:end], []).append([start, end - 1])
            gold.append((text[start:end], sp.label))
        records.append({"text": text, "label": label})
    corpus = read_spans(write(tmp_path, *records))
    found = [entity for ex in corpus.examples for entity in char_entities(ex)]
    assert sorted(found) == sorted(gold)
    assert any(not entity.isascii() and any(c.isascii() for c in entity) for entity, _ in gold)
