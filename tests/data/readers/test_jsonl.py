"""Tests for readers/jsonl.py: token/tag JSON lines, labelled and unlabelled, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.data.readers.jsonl import read_jsonl
from bertkit.errors import BadInputError


def write(tmp_path: Path, *lines: str | dict, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join((json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x) + "\n" for x in lines)
    )
    return path


def raises_at(path: Path, line: int, fragment: str, **kw) -> None:
    with pytest.raises(BadInputError) as info:
        read_jsonl(path, **kw)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: " if line else f"{path}: ")
    assert fragment in str(info.value)


def test_reads_tokens_tags_and_lines(tmp_path):
    path = write(
        tmp_path,
        {"tokens": ["John", "runs"], "tags": ["B-PER", "O"]},
        "",
        {"tokens": ["东", "京"], "tags": ["B-LOC", "I-LOC"]},
    )
    corpus = read_jsonl(path)
    assert corpus.scheme == "iob2"
    assert [ex.tokens for ex in corpus.examples] == [["John", "runs"], ["东", "京"]]
    assert corpus.examples[1].tags == ["B-LOC", "I-LOC"]
    assert corpus.examples[1].lines == [3, 3]
    assert corpus.examples[0].path == str(path)


def test_unlabelled_when_there_is_no_tags_key(tmp_path):
    corpus = read_jsonl(write(tmp_path, {"tokens": ["a", "b"]}, {"tokens": []}))
    assert [ex.tags for ex in corpus.examples] == [None, None]
    assert len(corpus.examples[1]) == 0


def test_tags_after_an_untagged_first_record_are_an_error_not_ignored(tmp_path):
    path = write(tmp_path, {"tokens": ["a"]}, {"tokens": ["b"], "tags": ["B-X"]})
    raises_at(path, 2, "this record has 'tags' but the first record has none")
    assert [ex.tags for ex in read_jsonl(path, tags_key=None).examples] == [None, None]


def test_key_names_can_be_changed(tmp_path):
    corpus = read_jsonl(write(tmp_path, {"words": ["a"], "ner": ["S-X"]}), tokens_key="words", tags_key="ner")
    assert corpus.examples[0].tags == ["S-X"]
    assert corpus.scheme == "bioes"


def test_bad_json_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, {"tokens": ["a"], "tags": ["O"]}, '{"tokens": ["b"], "tags": ["O"]')
    raises_at(path, 2, "not valid JSON")


def test_non_object_is_an_error(tmp_path):
    raises_at(write(tmp_path, '["a", "b"]'), 1, "expected a JSON object, found list")


def test_missing_tags_in_a_labelled_file_is_an_error(tmp_path):
    path = write(tmp_path, {"tokens": ["a"], "tags": ["O"]}, {"tokens": ["b"]})
    raises_at(path, 2, "missing key 'tags'")


def test_missing_tokens_is_an_error(tmp_path):
    raises_at(write(tmp_path, {"words": ["a"]}), 1, "missing key 'tokens' (keys found: words)")


def test_length_mismatch_is_an_error(tmp_path):
    path = write(tmp_path, {"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O"]})
    raises_at(path, 2, "2 tokens but 1 tags")


def test_tokens_must_be_strings(tmp_path):
    raises_at(write(tmp_path, {"tokens": ["a", 3]}), 1, "'tokens' must be a list of strings")


def test_forbidden_tag_names_the_record_line(tmp_path):
    path = write(tmp_path, {"tokens": ["a"], "tags": ["B-X"]}, {"tokens": ["a", "b"], "tags": ["O", "I-X"]})
    raises_at(path, 2, "I-X follows O", scheme="iob2")


def test_unknown_tag_with_fixed_labels(tmp_path):
    raises_at(write(tmp_path, {"tokens": ["a"], "tags": ["B-FOO"]}), 1, "unknown tag 'B-FOO'", labels=["O"])


def test_warn_mode_skips_bad_records_and_counts_them(tmp_path, caplog):
    path = write(
        tmp_path,
        {"tokens": ["a"], "tags": ["O"]},
        "{not json",
        {"tokens": ["b", "c"], "tags": ["O"]},
        {"tokens": ["d"], "tags": ["B-X"]},
        "{also not json",
    )
    corpus = read_jsonl(path, on_bad_line="warn")
    assert [ex.tokens for ex in corpus.examples] == [["a"], ["d"]]
    assert f"{path}: 2 line(s) with bad JSON (first at line 2)" in caplog.text
    assert f"{path}: 1 line(s) with length mismatches (first at line 3)" in caplog.text


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_file_is_an_error(tmp_path, text):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    raises_at(path, 0, "no records found")
