"""Tests for data/readers/relations.py: SemEval-2010 Task 8 blocks and relation JSON lines, their errors at
file:line, and the tag round trip."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.readers.relations import (
    SEMEVAL_TAGS,
    Argument,
    RelationExample,
    insert_tags,
    read_relation_jsonl,
    read_semeval,
    strip_tags,
)
from bertkit.errors import BadInputError
from bertkit.tasks.relation.markers import PLAIN, marked_text

SEMEVAL = SHARED_DATA / "semeval2010_task8"

BLOCKS = (
    '1\t"The system has an arrayed <e1>configuration</e1> of antenna <e2>elements</e2>."\n'
    "Component-Whole(e2,e1)\n"
    "Comment: Not a collection: there is structure here, organisation.\n"
    "\n"
    '2\t""Any time," he told <e1>her</e1>, "the <e2>cradle</e2> waits.""\n'
    "Other\n"
    "Comment:\n"
    "\n"
)


def write(tmp_path: Path, text: str, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, *records: dict | str, name: str = "rel.jsonl") -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return write(tmp_path, "".join(line + "\n" for line in lines), name)


def raises_at(reader, path: Path, line: int, fragment: str, **kw) -> None:
    with pytest.raises(BadInputError) as info:
        reader(path, **kw)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert fragment in str(info.value)


def test_semeval_blocks_give_text_spans_labels_and_ids(tmp_path):
    first, second = read_semeval(write(tmp_path, BLOCKS))
    assert first.text == "The system has an arrayed configuration of antenna elements."
    assert first.text[first.head.start : first.head.end] == "configuration"
    assert first.text[first.tail.start : first.tail.end] == "elements"
    assert (first.label, first.id, first.line) == ("Component-Whole(e2,e1)", "1", 1)
    # only the outermost quotes go: the sentence's own quotes stay
    assert second.text == '"Any time," he told her, "the cradle waits."'
    assert second.text[second.head.start : second.head.end] == "her"
    assert (second.label, second.line) == ("Other", 5)


def test_semeval_sentences_alone_read_unlabelled(tmp_path):
    path = write(tmp_path, '8001\t"The most common <e1>audits</e1> were about <e2>waste</e2>."\n')
    [record] = read_semeval(path, labelled=False)
    assert record.label is None and record.id == "8001"
    raises_at(read_semeval, path, 1, "no label line after this sentence")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (BLOCKS.replace("</e2>.", "."), 1, "no </e2>"),
        (BLOCKS.replace("<e1>her</e1>", "<e1>her</e1> <e1>x</e1>"), 5, "<e1> occurs more than once"),
        (BLOCKS.replace('her</e1>, "the <e2>cradle</e2>', 'her, "the <e2>cradle</e1></e2>'), 5, "overlap"),
        (BLOCKS.replace("Other\n", "Other\nOther\n"), 7, 'expected id<TAB>"sentence"'),
        ("8001\tMessage-Topic\n8002\tProduct-Producer\n", 1, "an answer key?"),
    ],
)
def test_bad_semeval_blocks_are_errors_at_their_line(tmp_path, text, line, fragment):
    raises_at(read_semeval, write(tmp_path, text), line, fragment)


def test_semeval_label_outside_the_training_set_is_an_error_at_its_line(tmp_path):
    raises_at(
        read_semeval,
        write(tmp_path, BLOCKS),
        6,
        "'Other' is not among the training labels",
        labels={"Component-Whole(e2,e1)"},
    )


def test_warn_mode_skips_and_counts_bad_blocks(tmp_path, caplog):
    text = BLOCKS.replace("</e2>.", ".")  # the first block is bad; its label line must not be orphaned
    records = read_semeval(write(tmp_path, text), on_bad_line="warn")
    assert [r.id for r in records] == ["2"]
    assert "1 line(s) with bad entity tags (first at line 1)" in caplog.text


HEAD = {"start": 0, "end": 5, "type": "PER", "text": "Alice"}
TAIL = {"start": 16, "end": 20, "type": "ORG"}
RECORD = {"text": "Alice works for Acme.", "head": HEAD, "tail": TAIL, "label": "employee_of", "id": 7}


def test_jsonl_records_keep_offsets_types_labels_and_ids(tmp_path):
    [record] = read_relation_jsonl(jsonl(tmp_path, RECORD))
    assert record == RelationExample(
        "Alice works for Acme.",
        Argument(0, 5, "PER"),
        Argument(16, 20, "ORG"),
        "employee_of",
        "7",
        str(tmp_path / "rel.jsonl"),
        1,
    )


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({**RECORD, "tail": {"start": 16, "end": 99}}, "tail span [16, 99) lies outside the text of 21"),
        ({**RECORD, "head": {"start": -1, "end": 3}}, "head span [-1, 3) lies outside"),
        ({**RECORD, "tail": {"start": 3, "end": 3}}, "or is empty"),
        ({**RECORD, "tail": {"start": 2, "end": 8}}, "overlap"),
        ({**RECORD, "head": {**HEAD, "text": "Alicia"}}, "covers 'Alice' but the file says 'Alicia'"),
        ({**RECORD, "head": {"start": "0", "end": 5}}, '"head" must be {"start": int'),
        ({**RECORD, "label": None}, 'expected a string "label"'),
        ({"head": HEAD, "tail": TAIL, "label": "x"}, "missing string key 'text'"),
        ('{"text": "unclosed', "not valid JSON"),
    ],
)
def test_bad_jsonl_records_are_errors_at_their_line(tmp_path, record, fragment):
    path = jsonl(tmp_path, RECORD, "", record)
    raises_at(read_relation_jsonl, path, 3, fragment)


def test_jsonl_without_labels_reads_for_prediction(tmp_path):
    unlabelled = {k: v for k, v in RECORD.items() if k != "label"}
    [record] = read_relation_jsonl(jsonl(tmp_path, unlabelled), labelled=False)
    assert record.label is None
    raises_at(read_relation_jsonl, jsonl(tmp_path, unlabelled), 1, 'expected a string "label"')


@st.composite
def texts_with_two_spans(draw):
    text = draw(st.text(alphabet="ab <>/e12x", min_size=2, max_size=40))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=4, max_size=4)))
    if cuts[0] == cuts[1] or cuts[2] == cuts[3]:
        cuts = [0, 1, len(text) - 1, len(text)]
    first, second = Argument(cuts[0], cuts[1]), Argument(cuts[2], cuts[3])
    return (text, first, second) if draw(st.booleans()) else (text, second, first)


@settings(max_examples=200, deadline=None)
@given(texts_with_two_spans())
def test_tags_round_trip(case):
    text, head, tail = case
    for tags in (SEMEVAL_TAGS, PLAIN):
        if any(t in text for t in tags):  # a text holding a tag itself cannot be told apart from one
            continue
        assert strip_tags(insert_tags(text, head, tail, tags), tags) == (text, head, tail)
    if not any(t in text for t in PLAIN):
        assert insert_tags(text, head, tail, PLAIN) == marked_text(RelationExample(text, head, tail))


@pytest.mark.skipif(
    not (SEMEVAL / "TRAIN_FILE.TXT").is_file(), reason="SemEval-2010 Task 8 not in shared data"
)
def test_the_real_files_read_whole_and_agree_with_the_answer_key():
    train = read_semeval(SEMEVAL / "TRAIN_FILE.TXT")
    assert len(train) == 8000 and Counter(r.label for r in train)["Other"] == 1410
    assert len({r.label for r in train}) == 19
    test = read_semeval(SEMEVAL / "TEST_FILE_FULL.TXT", labels={r.label for r in train})
    key = dict(line.split("\t") for line in (SEMEVAL / "TEST_FILE_KEY.TXT").read_text().splitlines())
    assert len(test) == 2717
    assert all(key[r.id] == r.label.split("(")[0] for r in test)  # the key is the label without direction
    unlabelled = read_semeval(SEMEVAL / "TEST_FILE.txt", labelled=False)
    assert [(r.text, r.head, r.tail) for r in unlabelled] == [(r.text, r.head, r.tail) for r in test]
