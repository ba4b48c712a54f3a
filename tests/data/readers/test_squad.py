"""Tests for data/readers/squad.py: SQuAD v1.1/v2.0 JSON and JSON lines, answer offset repair, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.readers.squad import REPAIR_RADIUS, place_answer, read_qa_file
from bertkit.errors import BadInputError, BertkitError
from bertkit.records import QaAnswer

CONTEXT = "Super Bowl 50 was won by the Denver Broncos in Santa Clara."


def squad(*paragraphs: dict, version: str = "1.1") -> dict:
    return {"version": version, "data": [{"title": "Super_Bowl_50", "paragraphs": list(paragraphs)}]}


def write_json(tmp_path: Path, document: dict, name: str = "data.json", indent: int | None = 1) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def write_lines(tmp_path: Path, *rows: dict | str, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    text = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_squad_v1_with_ids_answers_titles_and_lines(tmp_path):
    start = CONTEXT.index("Denver Broncos")
    qas = [
        {
            "id": "q1",
            "question": "Who won?",
            "answers": [{"text": "Denver Broncos", "answer_start": start}] * 2,
        },
        {"id": "q2", "question": "Where?", "answers": [{"text": "Santa Clara", "answer_start": 47}]},
    ]
    path = write_json(tmp_path, squad({"context": CONTEXT, "qas": qas}))
    examples = read_qa_file(path)
    assert [e.id for e in examples] == ["q1", "q2"]
    assert examples[0].answers == [QaAnswer("Denver Broncos", start)] * 2
    assert examples[1].answers == [QaAnswer("Santa Clara", 47)]
    assert CONTEXT[47:58] == "Santa Clara"
    assert examples[0].title == "Super_Bowl_50" and examples[0].path == str(path)
    lines = path.read_text().split("\n")
    assert '"q1"' in lines[examples[0].line - 1] and '"q2"' in lines[examples[1].line - 1]
    assert not any(e.is_impossible for e in examples)


def test_reads_squad_v2_unanswerable_questions(tmp_path):
    qas = [
        {"id": "a", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 29}]},
        {
            "id": "b",
            "question": "Who lost the 1990 game?",
            "answers": [],
            "plausible_answers": [{"text": "Denver Broncos", "answer_start": 29}],
            "is_impossible": True,
        },
    ]
    examples = read_qa_file(write_json(tmp_path, squad({"context": CONTEXT, "qas": qas}, version="v2.0")))
    assert [e.is_impossible for e in examples] == [False, True]
    assert examples[1].answers == [] and examples[1].placed == []


def test_reads_json_lines_in_every_answer_shape(tmp_path):
    path = write_lines(
        tmp_path,
        {
            "id": "x",
            "question": "q?",
            "context": CONTEXT,
            "answers": [{"text": "Broncos", "answer_start": 36}],
        },
        {
            "id": 7,
            "question": "q?",
            "context": CONTEXT,
            "answers": {"text": ["Santa Clara"], "answer_start": [47]},
        },
        "",
        {"question": "q?", "context": CONTEXT, "answers": ["Super Bowl 50"]},
        {"id": "none", "question": "q?", "context": CONTEXT, "answers": []},
    )
    examples = read_qa_file(path)
    assert [e.id for e in examples] == ["x", "7", "4", "none"]  # no id: the line number
    assert [e.line for e in examples] == [1, 2, 4, 5]
    assert [a.start for e in examples for a in e.answers] == [36, 47, 0]
    assert examples[3].is_impossible


def test_unlabelled_reading_leaves_answers_out(tmp_path):
    path = write_lines(tmp_path, {"id": "x", "question": "q?", "context": CONTEXT, "answers": ["Broncos"]})
    assert read_qa_file(path, labelled=False)[0].answers is None
    path = write_lines(tmp_path, {"id": "x", "question": "q?", "context": CONTEXT}, name="bare.jsonl")
    assert read_qa_file(path)[0].answers is None


def test_chinese_answers_are_character_offsets(tmp_path):
    context = "北京是中国的首都，上海在东方。"
    qa = {"id": "zh", "question": "中国的首都是哪里？", "answers": [{"text": "北京", "answer_start": 0}]}
    qa2 = {"id": "zh2", "question": "哪个城市在东方？", "answers": [{"text": "上海", "answer_start": 9}]}
    [first, second] = read_qa_file(write_json(tmp_path, squad({"context": context, "qas": [qa, qa2]})))
    assert context[second.answers[0].start : second.answers[0].end] == "上海"
    assert first.answers[0] == QaAnswer("北京", 0)


@pytest.mark.parametrize(
    ("context", "text", "start", "expected", "status"),
    [
        ("the cat sat", "cat", 4, 4, "ok"),
        ("the cat sat", "cat", -1, 4, "repaired"),  # missing offset, the text occurs once
        ("the cat sat", "cat", 5, 4, "repaired"),  # off by one
        ("the cat sat", "cat", 3, 4, "repaired"),
        ("the cat sat", "cat", 400, 4, "repaired"),  # far off, but there is only one "cat"
        ("cat and cat and cat", "cat", 9, 8, "repaired"),  # the nearest of several
        ("cat and cat and cat", "cat", -1, None, "unplaced"),  # several and no offset: cannot choose
        ("cat" + " x" * REPAIR_RADIUS + " cat", "cat", 34, None, "unplaced"),  # several, none near
        ("the cat sat", "dog", 4, None, "unplaced"),
        ("the cat sat", "", 0, None, "unplaced"),
        ("the cat sat", " ", 3, None, "unplaced"),
        ("北京是中国的首都", "首都", 5, 6, "repaired"),
    ],
)
def test_place_answer(context, text, start, expected, status):
    end = None if expected is None else expected + len(text)
    assert place_answer(context, text, start) == (expected, end, status)


def test_an_answer_with_spaces_the_context_lacks_is_placed_without_them():
    assert place_answer("the cat.", " cat ", 3) == (4, 7, "repaired")
    assert place_answer("the cat sat", " cat ", 3) == (3, 8, "ok")  # the spaces are in the context
    assert QaAnswer(" cat ", 4, 7).end == 7 and QaAnswer("cat", 4).end == 7


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="ab 北京", min_size=1, max_size=60),
    st.data(),
)
def test_a_placed_answer_always_covers_its_text(context, data):
    begin = data.draw(st.integers(0, len(context) - 1))
    end = data.draw(st.integers(begin + 1, len(context)))
    text = context[begin:end]
    shift = data.draw(st.integers(-3, 3))
    start, stop, status = place_answer(context, text, max(0, begin + shift))
    if status == "unplaced":
        assert not text.strip()  # a non-blank text taken from the context is always found near its place
    else:
        assert context[start:stop] in (text, text.strip())
        assert abs(start - begin) <= REPAIR_RADIUS or context.count(context[start:stop]) == 1


def test_repairs_and_unplaced_answers_are_counted_with_the_first_ids(tmp_path, caplog):
    rows = [
        {
            "id": "ok",
            "question": "q",
            "context": "the cat sat",
            "answers": [{"text": "cat", "answer_start": 4}],
        },
        {
            "id": "off",
            "question": "q",
            "context": "the cat sat",
            "answers": [{"text": "cat", "answer_start": 5}],
        },
        {
            "id": "gone",
            "question": "q",
            "context": "the cat sat",
            "answers": [{"text": "dog", "answer_start": 4}],
        },
        {
            "id": "neg",
            "question": "q",
            "context": "the cat sat",
            "answers": [{"text": "sat", "answer_start": -1}],
        },
    ]
    with caplog.at_level(logging.WARNING):
        examples = read_qa_file(write_lines(tmp_path, *rows))
    assert [a.start for e in examples for a in e.answers] == [4, 4, None, 8]
    assert [bool(e.placed) for e in examples] == [True, True, False, True]
    messages = [r.getMessage() for r in caplog.records]
    assert any("2 answer offset(s)" in m and "off, neg" in m for m in messages)
    assert any("1 answer(s) could not be placed" in m and "gone" in m for m in messages)


def raises_at(path: Path, line: int, fragment: str, **kwargs) -> None:
    with pytest.raises(BadInputError) as info:
        read_qa_file(path, **kwargs)
    assert info.value.line == line, str(info.value)
    assert fragment in str(info.value)


def test_malformed_json_lines_name_their_line(tmp_path):
    good = {"id": "a", "question": "q", "context": "c", "answers": []}
    raises_at(write_lines(tmp_path, good, "{not json"), 2, "not valid JSON")
    raises_at(write_lines(tmp_path, good, {"id": "b", "context": "c"}), 2, '"question" string')
    raises_at(write_lines(tmp_path, good, {"id": "b", "question": "q"}), 2, '"context"')
    raises_at(write_lines(tmp_path, good, good), 2, "question id 'a' was used before")
    bad_start = {"id": "b", "question": "q", "context": "c", "answers": [{"text": "c", "answer_start": "0"}]}
    raises_at(write_lines(tmp_path, good, bad_start), 2, '"answer_start" must be an integer')


def test_malformed_squad_names_the_place_in_the_tree(tmp_path):
    qas = [{"id": "q1", "question": "Who won?"}, {"id": "q2", "answers": []}]
    path = write_json(tmp_path, squad({"context": CONTEXT, "qas": qas}))
    where = 'data[0].paragraphs[0].qas[1]: expected an object with a "question"'
    raises_at(path, line_with(path, '"q2"'), where)
    path = write_json(tmp_path, squad({"qas": []}), name="no_context.json")
    raises_at(path, 0, 'data[0].paragraphs[0]: expected a "context" string')
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n{"paragraphs": [}\n]}', encoding="utf-8")
    raises_at(broken, 2, "not valid JSON")


def line_with(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().split("\n"), 1) if needle in line)


def test_warn_mode_skips_and_counts_bad_records(tmp_path, caplog):
    good = {"id": "a", "question": "q", "context": "c", "answers": []}
    path = write_lines(tmp_path, good, "[1, 2]", {"id": "b", "context": "c"}, good | {"id": "c"})
    with caplog.at_level(logging.WARNING):
        examples = read_qa_file(path, on_bad_line="warn")
    assert [e.id for e in examples] == ["a", "c"]
    assert any("line(s) with bad JSON (first at line 2)" in r.getMessage() for r in caplog.records)


def test_an_empty_file_and_a_wrong_format_are_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    raises_at(empty, 0, "no questions found")
    path = write_lines(tmp_path, {"id": "a", "question": "q", "context": "c"})
    raises_at(path, 0, "not a SQuAD file", format="squad")
    with pytest.raises(BertkitError, match="not 'conll'"):
        read_qa_file(path, format="conll")
