"""Tests for readers/tabular.py: TSV/CSV/JSON-lines tables of texts and labels, and their errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from bertkit.data.readers.tabular import detect_delimiter, read_table
from bertkit.errors import BadInputError

DATA = SHARED_DATA


def write(tmp_path: Path, name: str, text: str, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def raises_at(path: Path, line: int, fragment: str, **kw) -> BadInputError:
    with pytest.raises(BadInputError) as info:
        read_table(path, **kw)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: " if line else f"{path}: ")
    assert fragment in str(info.value)
    return info.value


def test_glue_tsv_keeps_unbalanced_quotes_verbatim(tmp_path):
    path = write(tmp_path, "train.tsv", 'sentence\tlabel\nhe said "hi \t1\nshe left .\t0\n"odd\t1\n')
    examples = read_table(path, text_column="sentence", label_column="label")
    assert [ex.text for ex in examples] == ['he said "hi', "she left .", '"odd']
    assert [ex.label for ex in examples] == ["1", "0", "1"]  # GLUE's 0/1 stay strings
    assert [ex.line for ex in examples] == [2, 3, 4]
    assert examples[0].path == str(path) and examples[0].pair is None


def test_bom_does_not_hide_the_first_header_name(tmp_path):
    path = write(tmp_path, "data.tsv", "sentence\tlabel\r\ngood\tpos\r\n", bom=True)
    examples = read_table(path, text_column="sentence", label_column="label")
    assert [(ex.text, ex.label, ex.line) for ex in examples] == [("good", "pos", 2)]


def test_csv_quoted_comma_and_newline_keep_line_numbers(tmp_path):
    text = 'text,label\n"a, b",x\n"first line\nsecond line",y\nplain,x\n"c ""quoted""",y\n'
    examples = read_table(write(tmp_path, "data.csv", text), text_column="text", label_column="label")
    assert [ex.text for ex in examples] == ["a, b", "first line\nsecond line", "plain", 'c "quoted"']
    assert [ex.line for ex in examples] == [2, 3, 5, 6]


def test_csv_field_count_error_after_a_multiline_record_names_its_line(tmp_path):
    path = write(tmp_path, "data.csv", 'text,label\n"one\ntwo",x\nthree\n')
    raises_at(
        path, 4, "expected 2 fields (as in the header), found 1", text_column="text", label_column="label"
    )


def test_csv_unterminated_quote_is_an_error_at_its_start(tmp_path):
    path = write(tmp_path, "data.csv", 'text,label\nok,x\n"never closed,y\nmore,x\n')
    raises_at(path, 3, "malformed CSV", text_column="text", label_column="label")


def test_jsonl(tmp_path):
    records = [{"q": "a?", "p": "b.", "y": "yes"}, {"q": "c?", "p": "d.", "y": 1}]
    path = write(tmp_path, "data.jsonl", "\n".join(map(json.dumps, records)) + "\n\n")
    examples = read_table(path, text_column="q", pair_column="p", label_column="y")
    assert [(ex.text, ex.pair, ex.label, ex.line) for ex in examples] == [
        ("a?", "b.", "yes", 1),
        ("c?", "d.", "1", 2),
    ]


def test_jsonl_whole_float_labels_are_the_classes_of_ints(tmp_path):
    # pandas writes a class 1 as 1.0; regression keeps its numbers as they are
    path = write(tmp_path, "data.jsonl", '{"t": "a", "y": 1.0}\n{"t": "b", "y": 0}\n{"t": "c", "y": 2.5}\n')
    assert [ex.label for ex in read_table(path, text_column="t", label_column="y")] == ["1", "0", "2.5"]
    assert [
        ex.label for ex in read_table(path, text_column="t", label_column="y", label_mode="regression")
    ] == [
        1.0,
        0.0,
        2.5,
    ]


def test_a_json_array_is_refused_with_how_to_make_json_lines(tmp_path):
    one_line = write(tmp_path, "a.json", '[{"t": "a", "y": "x"}]\n')
    raises_at(one_line, 1, "found list; JSON lines are read here", text_column="t", label_column="y")
    pretty = write(tmp_path, "b.json", '[\n  {"t": "a", "y": "x"}\n]\n')
    raises_at(pretty, 1, "jq -c '.[]'", text_column="t", label_column="y")


def test_jsonl_multi_label_lists_and_missing_keys(tmp_path):
    path = write(tmp_path, "data.jsonl", '{"t": "x", "y": ["b", "a", "b"]}\n{"y": []}\n')
    raises_at(path, 2, "missing key 't'", text_column="t", label_column="y", label_mode="multi")
    examples = read_table(path, text_column="t", label_column="y", label_mode="multi", on_bad_line="warn")
    assert [ex.label for ex in examples] == [["a", "b"]]


def test_jsonl_null_or_non_string_values_are_bad_lines(tmp_path):
    path = write(
        tmp_path, "data.jsonl", '{"t": null, "y": "a"}\n{"t": 5, "y": "a"}\n{"t": "ok", "y": null}\n'
    )
    raises_at(path, 1, "text in column 't' must be a string", text_column="t", label_column="y")
    assert read_table(path, text_column="t", label_column="y", on_bad_line="warn") == []
    null_label = write(tmp_path, "labels.jsonl", '{"t": "ok", "y": "a"}\n{"t": "ok", "y": null}\n')
    raises_at(null_label, 2, "label None must be a string", text_column="t", label_column="y")


def test_columns_by_index_without_header(tmp_path):
    path = write(tmp_path, "data.tsv", "0\tfirst text\tpos\n1\tsecond text\tneg\n")
    examples = read_table(path, text_column=1, label_column="2", header=False)
    assert [(ex.text, ex.label, ex.line) for ex in examples] == [
        ("first text", "pos", 1),
        ("second text", "neg", 2),
    ]


def test_columns_by_index_with_header(tmp_path):
    path = write(tmp_path, "data.tsv", "id\ttext\tlabel\n0\tfirst\tpos\n")
    examples = read_table(path, text_column=1, label_column=2, header=True)
    assert [(ex.text, ex.label, ex.line) for ex in examples] == [("first", "pos", 2)]
    # header=False reads it as data, as asked
    assert [ex.text for ex in read_table(path, text_column=1, label_column=2, header=False)] == [
        "text",
        "first",
    ]


def test_a_header_like_first_row_is_refused_when_the_columns_are_indices(tmp_path):
    # IMDB's header with index columns: read as data it would add a label "sentiment" seen once
    body = "review,sentiment\na fine film,positive\na dull film,negative\ngood,positive\n"
    path = write(tmp_path, "imdb.csv", body)
    error = raises_at(path, 1, "looks like a header (review, sentiment)", text_column=0, label_column=1)
    assert "--header yes" in str(error)
    examples = read_table(path, text_column=0, label_column=1, header=True)
    assert [ex.label for ex in examples] == ["positive", "negative", "positive"]


def test_data_rows_that_merely_look_like_names_are_read_as_data(tmp_path):
    # intent data: the first row's label recurs below, so it is data, not a header
    path = write(tmp_path, "intents.tsv", "question\tquestion\nhello there\tgreeting\nwhy\tquestion\n")
    assert len(read_table(path, text_column=0, label_column=1)) == 3
    # a first row with a sentence in it is no header either (no short names only)
    path = write(tmp_path, "plain.tsv", "the film was fine.\tlabel\nbad\tlabel2\n")
    assert len(read_table(path, text_column=0, label_column=1)) == 2


def test_missing_column_names_file_line_one_and_the_header(tmp_path):
    path = write(tmp_path, "data.tsv", "sentence\tlabel\nx\t1\n")
    raises_at(path, 1, "no text column 'text'; the header has: sentence, label", text_column="text")


MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def test_errors_name_columns_as_the_user_gave_them(tmp_path):
    # MRPC's header: the messages must say '#1 String', not the index it resolved to.
    kw = {"text_column": "#1 String", "pair_column": "#2 String", "label_column": "Quality"}
    path = write(tmp_path, "mrpc.tsv", MRPC_HEADER + "1\t1\t2\ta b\tc d\n0\t3\t4\t \te f\n")
    raises_at(path, 3, "empty text in column '#1 String'", **kw)
    pair = write(tmp_path, "pair.tsv", MRPC_HEADER + "1\t1\t2\ta b\t\n")
    raises_at(pair, 2, "empty pair text in column '#2 String'", **kw)
    examples = read_table(path, **kw, on_bad_line="warn")
    assert [(ex.text, ex.pair, ex.label) for ex in examples] == [("a b", "c d", "1")]
    by_index = write(tmp_path, "raw.tsv", "1\t \n")
    raises_at(by_index, 1, "empty text in column 1", text_column="1", label_column=0, header=False)


def test_duplicate_header_names_are_an_error(tmp_path):
    path = write(tmp_path, "dup.tsv", "text\ttext\tlabel\na\tb\t1\n")
    raises_at(path, 1, "the header names column 'text' more than once", text_column="text")


def test_non_ascii_digits_are_a_column_name_not_an_index(tmp_path):
    path = write(tmp_path, "data.tsv", "²\tlabel\na\t1\n")
    assert read_table(path, text_column="²", label_column="label")[0].text == "a"


def test_wrong_field_count_names_the_line(tmp_path):
    path = write(tmp_path, "data.tsv", "sentence\tlabel\na\t1\nb\t0\textra\nc\t1\n")
    raises_at(
        path, 3, "expected 2 fields (as in the header), found 3", text_column="sentence", label_column="label"
    )
    no_header = write(tmp_path, "raw.tsv", "a\t1\nb\n")
    raises_at(
        no_header, 2, "expected 2 fields (as in the first row, line 1), found 1", text_column=0, header=False
    )


def test_blank_lines_in_the_middle_are_bad_at_the_end_ignored(tmp_path):
    path = write(tmp_path, "data.tsv", "sentence\tlabel\na\t1\n\nb\t0\n\n\n")
    raises_at(path, 3, "blank line", text_column="sentence", label_column="label")
    examples = read_table(path, text_column="sentence", label_column="label", on_bad_line="warn")
    assert [ex.line for ex in examples] == [2, 4]


def test_empty_text_is_a_bad_line(tmp_path):
    path = write(tmp_path, "data.tsv", "sentence\tlabel\n  \t1\n")
    raises_at(path, 2, "empty text", text_column="sentence", label_column="label")


def test_unknown_label_with_a_fixed_set_names_file_and_line(tmp_path):
    path = write(tmp_path, "dev.tsv", "sentence\tlabel\na\t1\nb\t2\n")
    raises_at(
        path,
        3,
        "unknown label '2'; expected one of 0, 1",
        text_column=0,
        label_column=1,
        header=True,
        labels={"0", "1"},
    )


def test_regression_labels_and_parse_errors(tmp_path):
    path = write(tmp_path, "sts.tsv", "s1\ts2\tscore\na\tb\t3.5\nc\td\t 1e0 \n")
    examples = read_table(
        path, text_column="s1", pair_column="s2", label_column="score", label_mode="regression"
    )
    assert [ex.label for ex in examples] == [3.5, 1.0]
    bad = write(tmp_path, "bad.tsv", "s1\ts2\tscore\na\tb\t3.5\nc\td\thigh\n")
    raises_at(
        bad,
        3,
        "label 'high' is not a number",
        text_column="s1",
        label_column="score",
        label_mode="regression",
    )


def test_multi_label_splitting(tmp_path):
    path = write(tmp_path, "data.tsv", "text\ttags\na\tsport, news ,sport\nb\t\nc\t,news,\n")
    examples = read_table(path, text_column="text", label_column="tags", label_mode="multi")
    assert [ex.label for ex in examples] == [["news", "sport"], [], ["news"]]
    piped = write(tmp_path, "piped.tsv", "text\ttags\na\tx|y\n")
    assert read_table(
        piped, text_column=0, label_column=1, header=True, label_mode="multi", label_delimiter="|"
    )[0].label == ["x", "y"]


def test_prediction_input_keeps_rows_with_empty_texts(tmp_path):
    # QQP's test file has empty questions; a submission needs a prediction for every row
    path = write(tmp_path, "test.tsv", "id\tq1\tq2\n0\twhat is it?\t\n1\t \thow so?\n")
    examples = read_table(path, text_column="q1", pair_column="q2", require_labels=False)
    assert [(ex.text, ex.pair, ex.line) for ex in examples] == [("what is it?", "", 2), ("", "how so?", 3)]
    raises_at(path, 2, "empty pair text in column 'q2'", text_column="q1", pair_column="q2")  # training data


def test_unlabelled_test_file(tmp_path):
    path = write(tmp_path, "test.tsv", "index\tsentence\n0\tfirst\n1\tsecond\n")
    examples = read_table(path, text_column="sentence", label_column="label", require_labels=False)
    assert [(ex.text, ex.label) for ex in examples] == [("first", None), ("second", None)]
    error = raises_at(path, 1, "no label column 'label'", text_column="sentence", label_column="label")
    # Said so a CLI user can act on it: no Python keyword in the message.
    assert "--label-column" in str(error) and "`bertkit predict`" in str(error)
    assert "require_labels" not in str(error)
    no_header = write(tmp_path, "raw.tsv", "first\nsecond\n")
    assert read_table(no_header, text_column=0, label_column=1, require_labels=False)[1].label is None
    error = raises_at(no_header, 1, "label column 1 is out of range", text_column=0, label_column=1)
    assert "`bertkit predict`" in str(error) and "require_labels" not in str(error)


def test_warn_mode_skips_and_counts(tmp_path, caplog):
    path = write(tmp_path, "data.tsv", "sentence\tlabel\na\t1\nb\t1\tx\n\t0\nc\t5\nd\t0\n")
    with caplog.at_level(logging.INFO):
        examples = read_table(
            path, text_column="sentence", label_column="label", labels=["0", "1"], on_bad_line="warn"
        )
    assert [ex.text for ex in examples] == ["a", "d"]
    assert f"{path}: 2 rows (3 skipped)" in caplog.text
    assert "1 line(s) with wrong field counts (first at line 3)" in caplog.text
    assert "1 line(s) with empty texts (first at line 4)" in caplog.text
    assert "1 line(s) with unknown labels (first at line 5)" in caplog.text


def test_delimiter_detection_and_override(tmp_path):
    assert detect_delimiter(write(tmp_path, "a.txt", "x,y\n")) == ","
    assert detect_delimiter(write(tmp_path, "b.txt", "x, y\tz\n")) == "\t"
    assert detect_delimiter(write(tmp_path, "c.jsonl", "{}\n")) is None
    semi = write(tmp_path, "d.csv", 'text;label\n"a;b";x\n')
    assert read_table(semi, text_column="text", label_column="label", delimiter=";")[0].text == "a;b"


@pytest.mark.skipif(not DATA.exists(), reason="shared GLUE data not available")
def test_glue_sample_files():
    dev = read_table(DATA / "glue_sst2/dev.tsv", text_column="sentence", label_column="label")
    assert len(dev) == 872 and {ex.label for ex in dev} == {"0", "1"}
    assert not dev[0].text.endswith(" ")
    rte = read_table(
        DATA / "glue_rte/train.tsv", text_column="sentence1", pair_column="sentence2", label_column="label"
    )
    assert len(rte) == 2490 and all(ex.pair for ex in rte)
    assert {ex.label for ex in rte} == {"entailment", "not_entailment"}
    test = read_table(
        DATA / "glue_sst2/test.tsv", text_column="sentence", label_column="label", require_labels=False
    )
    assert len(test) == 1821 and all(ex.label is None for ex in test)
