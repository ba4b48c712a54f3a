"""Tests for data/readers/seq2seq.py: JSON lines, TSV/CSV, dialogue pairs and KdConv arrays, their errors
at file:line, and the counts of the real SciTLDR, Tatoeba and KdConv files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.readers.seq2seq import (
    SEQ2SEQ_FORMATS,
    detect_seq2seq_format,
    dialogue_pairs,
    read_seq2seq,
)
from bertkit.errors import BadInputError


def write(tmp_path: Path, name: str, text: str, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def jsonl(tmp_path: Path, *records: dict | str, name: str = "data.jsonl") -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    return write(tmp_path, name, "".join(line + "\n" for line in lines))


def raises_at(path: Path, line: int, fragment: str, **kw) -> BadInputError:
    with pytest.raises(BadInputError) as info:
        read_seq2seq(path, **kw)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: " if line else f"{path}: "), str(info.value)
    assert fragment in str(info.value), str(info.value)
    return info.value


# --- JSON lines ---------------------------------------------------------------------------------------


def test_jsonl_reads_string_and_list_fields_ids_and_lines(tmp_path):
    path = jsonl(
        tmp_path,
        {"source": "a plain source", "target": "one", "id": 7},
        "",
        {"source": ["First  sentence.", "Second."], "target": ["ref a", "ref b", "ref c"], "paper_id": "p1"},
        {"source": "no id", "target": ["only"]},
    )
    first, second, third = read_seq2seq(path)
    assert (first.source, first.targets, first.id, first.line) == ("a plain source", ["one"], "7", 1)
    # sentences joined with one space; the double space inside a sentence is kept
    assert second.source == "First  sentence. Second."
    assert second.targets == ["ref a", "ref b", "ref c"] and second.target == "ref a"
    assert (second.id, second.line) == ("p1", 3)
    assert (third.id, third.line, third.control, third.path) == (None, 4, None, str(path))


def test_jsonl_custom_field_names_and_control(tmp_path):
    path = jsonl(
        tmp_path,
        {"abstract": "x", "tldr": "y", "style": "short"},
        {"abstract": "x2", "tldr": "y2"},
    )
    kw = {"source_field": "abstract", "target_field": "tldr", "control_field": "style"}
    first, second = read_seq2seq(path, **kw)
    assert (first.source, first.targets, first.control) == ("x", ["y"], "short")
    assert second.control is None
    bad = jsonl(tmp_path, {"abstract": "x", "tldr": "y", "style": 3}, name="bad.jsonl")
    raises_at(bad, 1, "control 'style' must be a string", **kw)


def test_jsonl_without_trailing_newline_keeps_the_last_record(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"source": "a", "target": "b"}\n{"source": "c", "target": "d"}')
    assert [ex.source for ex in read_seq2seq(path)] == ["a", "c"]


def test_bad_json_line_names_file_and_line(tmp_path):
    path = jsonl(tmp_path, {"source": "a", "target": "b"}, '{"source": "a", "target": ')
    raises_at(path, 2, "not valid JSON")


def test_missing_target_is_an_error_when_labelled_and_none_when_unlabelled(tmp_path):
    path = jsonl(tmp_path, {"source": "a", "target": "b"}, {"source": "c"}, {"source": "d", "target": None})
    raises_at(path, 2, "missing key 'target' (keys found: source); for a file without targets, read it")
    examples = read_seq2seq(path, labelled=False)
    assert [ex.targets for ex in examples] == [["b"], None, None]
    path = jsonl(tmp_path, {"source": "d", "target": None}, name="null.jsonl")
    raises_at(path, 1, "'target' is null")


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"source": "   ", "target": "b"}, "source in 'source' is empty"),
        ({"source": [], "target": "b"}, "source in 'source' is empty"),
        ({"source": 3, "target": "b"}, "must be a string or a list of strings"),
        ({"target": "b"}, "missing key 'source'"),
        ({"source": "a", "target": []}, "non-empty list of strings"),
        ({"source": "a", "target": ["ok", " "]}, "empty reference"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_records_are_errors_at_their_line(tmp_path, record, fragment):
    path = jsonl(tmp_path, {"source": "a", "target": "b"}, record)
    raises_at(path, 2, fragment)


def test_warn_mode_skips_and_counts_bad_records(tmp_path, caplog):
    path = jsonl(
        tmp_path,
        {"source": "", "target": "b"},
        {"source": "a", "target": "b"},
        "not json",
        {"source": " ", "target": "b"},
    )
    with caplog.at_level(logging.INFO):
        examples = read_seq2seq(path, on_bad_line="warn")
    assert [ex.line for ex in examples] == [2]
    assert "2 line(s) with empty sources (first at line 1)" in caplog.text
    assert "1 line(s) with bad JSON (first at line 3)" in caplog.text
    assert f"{path}: 1 pairs (3 bad records skipped)" in caplog.text


def test_a_file_of_only_bad_records_is_an_error_even_in_warn_mode(tmp_path):
    path = jsonl(tmp_path, {"source": "", "target": "b"})
    raises_at(path, 0, "no jsonl records found", on_bad_line="warn")


def test_jsonl_dialogue_lines_mix_with_pair_lines(tmp_path):
    path = jsonl(
        tmp_path,
        {"turns": ["hi", "hello", "how are you?"], "id": "c1"},
        {"source": "a", "target": "b"},
        {"turns": ["one", "two"]},
    )
    examples = read_seq2seq(path)
    assert [(ex.id, ex.source, ex.targets, ex.line) for ex in examples] == [
        ("c1/1", "hi", ["hello"], 1),
        ("c1/2", "hi [SEP] hello", ["how are you?"], 1),
        (None, "a", ["b"], 2),
        ("data-3/1", "one", ["two"], 3),  # no id: named by its line
    ]


def test_jsonl_dialogue_with_an_empty_turn_is_skipped_whole_and_counted(tmp_path, caplog):
    path = jsonl(tmp_path, {"turns": ["hi", "", "bye"], "id": "c"}, {"turns": ["a", "b"], "id": "d"})
    raises_at(path, 1, "turn 1 (from 0) is empty")
    examples = read_seq2seq(path, on_bad_line="warn")
    assert [ex.id for ex in examples] == ["d/1"]
    assert "1 line(s) with empty turns (first at line 1)" in caplog.text


def test_unlabelled_dialogues_are_the_conversations_so_far_whose_next_turn_is_wanted(tmp_path):
    path = jsonl(
        tmp_path,
        {"turns": ["hi", "hello", "how are you?"], "id": "c1"},
        {"turns": ["alone"]},  # one turn: a reply to it is wanted, not an error
    )
    examples = read_seq2seq(path, labelled=False)
    assert [(ex.id, ex.source, ex.targets, ex.line) for ex in examples] == [
        ("c1", "hi [SEP] hello [SEP] how are you?", None, 1),
        ("data-2", "alone", None, 2),
    ]
    last_two = read_seq2seq(path, labelled=False, context_turns=2, separator="|")
    assert last_two[0].source == "hello | how are you?"
    # labelled, the same file gives (context -> reply) pairs and refuses the lone turn
    raises_at(path, 2, "has 1 turn(s)")


def test_a_header_naming_other_fields_is_refused_not_read_as_a_pair(tmp_path):
    # CNN/DailyMail's CSV without --source-field/--target-field: column 0 (ids) would become the source
    path = tmp_path / "cnn.csv"
    path.write_text("id,article,highlights\n1,A long article here.,Short.\n2,Another one.,Brief.\n")
    raises_at(path, 1, "looks like a header (id, article, highlights)")
    examples = read_seq2seq(path, source_field="article", target_field="highlights")
    assert [(ex.source, ex.targets) for ex in examples] == [
        ("A long article here.", ["Short."]),
        ("Another one.", ["Brief."]),
    ]
    # Tatoeba's headerless rows are data
    path = tmp_path / "cmn.txt"
    path.write_text("Hi.\t嗨。\tCC-BY 2.0\nRun.\t你用跑的。\tCC-BY 2.0\n")
    assert len(read_seq2seq(path)) == 2


def test_unlabelled_records_may_hold_an_empty_placeholder_target(tmp_path):
    path = jsonl(tmp_path, {"source": "a", "target": ""}, {"source": "b", "target": []}, {"source": "c"})
    assert [(ex.source, ex.targets) for ex in read_seq2seq(path, labelled=False)] == [
        ("a", None),
        ("b", None),
        ("c", None),
    ]
    raises_at(path, 1, "empty reference")  # labelled, an empty target is still an error


def test_dialogue_of_one_turn_is_reported_not_dropped(tmp_path):
    path = jsonl(tmp_path, {"turns": ["a", "b"]}, {"turns": ["alone"]})
    raises_at(path, 2, "has 1 turn(s)")
    path = jsonl(tmp_path, {"turns": ["a", 3]}, name="types.jsonl")
    raises_at(path, 1, '"turns" must be a list of strings')


# --- TSV and CSV --------------------------------------------------------------------------------------

TATOEBA = (
    "Hi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #891077 (Martha)\n"
    "Run.\t你用跑的。\tCC-BY 2.0 (France) Attribution: tatoeba.org #4008918 (JSakuragi)\n"
)


def test_tatoeba_style_headerless_tsv_reads_both_directions(tmp_path):
    path = write(tmp_path, "cmn.txt", TATOEBA)
    en_zh = read_seq2seq(path)
    assert [(ex.source, ex.targets, ex.line) for ex in en_zh] == [
        ("Hi.", ["嗨。"], 1),
        ("Run.", ["你用跑的。"], 2),
    ]
    zh_en = read_seq2seq(path, source_column=1, target_column=0)
    assert [(ex.source, ex.target) for ex in zh_en] == [("嗨。", "Hi."), ("你用跑的。", "Run.")]


def test_tsv_with_header_uses_named_columns_and_keeps_stray_quotes(tmp_path):
    path = write(tmp_path, "d.tsv", 'target\tmode\tsource\nb "x\tshort\t"a\n\tlong\tc\n')
    raises_at(path, 3, "the target (column 0) is empty", control_field="mode")
    first, second = read_seq2seq(path, control_field="mode", labelled=False)
    assert (first.source, first.targets, first.control, first.line) == ('"a', ['b "x'], "short", 2)
    assert (second.source, second.targets, second.control) == ("c", None, "long")


def test_header_without_the_target_column(tmp_path):
    path = write(tmp_path, "d.tsv", "source\tother\nabc\tdef\n")
    raises_at(path, 1, "the header has no target column 'target'; it has: source, other")
    assert read_seq2seq(path, labelled=False)[0].targets is None
    raises_at(path, 1, "no control column 'style'", control_field="style", labelled=False)


def test_control_field_needs_a_header(tmp_path):
    path = write(tmp_path, "cmn.txt", TATOEBA)
    raises_at(path, 1, "the first row is no header", control_field="style")


def test_csv_with_quoted_commas_and_a_header(tmp_path):
    text = 'id,source,target\n1,"Hello, world","Bonjour, le monde"\n2,"two\nlines",plain\n3,x,y\n'
    examples = read_seq2seq(write(tmp_path, "d.csv", text))
    assert [(ex.source, ex.target, ex.line) for ex in examples] == [
        ("Hello, world", "Bonjour, le monde", 2),
        ("two\nlines", "plain", 3),
        ("x", "y", 5),
    ]


def test_too_few_fields_names_the_counts(tmp_path):
    path = write(tmp_path, "cmn.txt", "Hi.\t嗨。\tattr\nonly one field\n")
    error = raises_at(path, 2, "found 1 field(s), need 2 (source column 0, target column 1)")
    assert "warn" in str(error)  # the way out is named
    path = write(tmp_path, "h.csv", "source,target\na,b\nc\n")
    raises_at(path, 3, "found 1 field(s), need 2 (header line 1: source 'source' is column 0")
    path = write(tmp_path, "q.csv", 'source,target\n"one\ntwo"\n')
    raises_at(path, 2, "this record spans lines 2-3, a stray '\"' may have opened a quote")
    # unlabelled: the target is read when it is there, and a row without it is fine
    examples = read_seq2seq(write(tmp_path, "u.tsv", "a\tb\nc\n"), labelled=False)
    assert [(ex.source, ex.targets) for ex in examples] == [("a", ["b"]), ("c", None)]


def test_blank_line_in_the_middle_of_a_table_is_a_bad_line(tmp_path):
    path = write(tmp_path, "d.tsv", "a\tb\n\nc\td\n\n")
    raises_at(path, 2, "blank line")
    assert [ex.line for ex in read_seq2seq(path, on_bad_line="warn")] == [1, 3]


# --- dialogue pairs -----------------------------------------------------------------------------------


def test_dialogue_pairs_put_the_newest_turn_last_and_name_each_pair():
    pairs = dialogue_pairs(["t0", "t1", "t2", "t3"], conversation="c", path="f.json", line=5)
    assert [p.source for p in pairs] == ["t0", "t0 [SEP] t1", "t0 [SEP] t1 [SEP] t2"]
    assert [p.targets for p in pairs] == [["t1"], ["t2"], ["t3"]]
    assert [p.id for p in pairs] == ["c/1", "c/2", "c/3"]
    assert {(p.path, p.line) for p in pairs} == {("f.json", 5)}


def test_dialogue_pairs_context_turns_keeps_only_the_last_turns():
    pairs = dialogue_pairs(["t0", "t1", "t2", "t3"], conversation="c", context_turns=2, separator="|")
    assert [p.source for p in pairs] == ["t0", "t0 | t1", "t1 | t2"]
    assert dialogue_pairs(["only"], conversation="c") == []


def test_dialogue_pairs_refuse_a_blank_turn_and_negative_context():
    with pytest.raises(BadInputError, match=r"^f\.json:3: conversation 'c': turn 1 is empty"):
        dialogue_pairs(["a", "  ", "b"], conversation="c", path="f.json", line=3)
    with pytest.raises(ValueError, match="context_turns"):
        dialogue_pairs(["a", "b"], conversation="c", context_turns=-1)


@settings(max_examples=60, deadline=None)
@given(
    turns=st.lists(st.text(alphabet="ab ", min_size=1).filter(str.strip), min_size=1, max_size=8),
    context=st.integers(0, 4),
)
def test_dialogue_pairs_give_n_minus_one_pairs_ending_with_the_previous_turn(turns, context):
    pairs = dialogue_pairs(turns, conversation="c", context_turns=context, separator="<s>")
    assert len(pairs) == len(turns) - 1
    for i, pair in enumerate(pairs, 1):
        assert pair.targets == [turns[i]]
        kept = turns[:i] if context == 0 else turns[max(0, i - context) : i]
        assert pair.source.split(" <s> ") == kept


# --- KdConv -------------------------------------------------------------------------------------------

KDCONV = """[
  {
    "messages": [
      {"message": "知道这部电影吗？"},
      {"attrs": [{"attrname": "a", "attrvalue": "b", "name": "n"}], "message": "知道呀。"},
      {"message": "好看吗？"}
    ],
    "name": "电影一"
  },
  {
    "messages": [{"message": "你好"}, {"message": 42}],
    "name": "电影二"
  },
  {"name": "电影三", "messages": [{"message": "再见"}, {"message": "拜拜"}]}
]"""


def test_kdconv_conversations_become_pairs_at_their_start_line(tmp_path):
    path = write(tmp_path, "dev.json", KDCONV.replace('{"message": 42}', '{"message": "嗯"}'))
    examples = read_seq2seq(path)
    assert [(ex.id, ex.source, ex.target, ex.line) for ex in examples] == [
        ("dev-0/1", "知道这部电影吗？", "知道呀。", 2),
        ("dev-0/2", "知道这部电影吗？ [SEP] 知道呀。", "好看吗？", 2),
        ("dev-1/1", "你好", "嗯", 10),
        ("dev-2/1", "再见", "拜拜", 14),
    ]


def test_kdconv_bad_conversation_is_an_error_at_its_line_or_skipped_and_counted(tmp_path, caplog):
    path = write(tmp_path, "dev.json", KDCONV)
    raises_at(path, 10, "conversation 'dev-1': messages[1] must be")
    examples = read_seq2seq(path, on_bad_line="warn")
    assert [ex.id for ex in examples] == ["dev-0/1", "dev-0/2", "dev-2/1"]  # ids do not shift
    assert "1 line(s) with bad conversations (first at line 10)" in caplog.text


def test_kdconv_conversation_without_messages(tmp_path):
    path = write(
        tmp_path, "dev.json", '[\n  {"messages": [{"message": "a"}, {"message": "b"}]},\n  {"name": "x"}\n]'
    )
    raises_at(path, 3, 'expected an object with a "messages" list')


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[\n {"messages": []},\n {"messages": [\n  {"message": "a",}\n ]}\n]', 4, "not valid JSON"),
        ('[\n {"messages": [{"message": "a"}, {"message": "b"}]},\n]', 3, "not valid JSON (Expecting value"),
        (
            '[\n {"messages": [{"message": "a"}, {"message": "b"}]}\n {"messages": []}]',
            3,
            "expected ',' or ']'",
        ),
        ('[\n {"messages": [{"message": "a"}, {"message": "b"}]}\n]\n[]', 4, "more data after"),
        ('[\n {"messages": [{"message": "a"}, {"message": "b"}]}', 2, "expected ',' or ']'"),
    ],
)
def test_kdconv_invalid_json_names_the_decoders_line(tmp_path, text, line, fragment):
    raises_at(write(tmp_path, "dev.json", text), line, fragment, on_bad_line="warn")


def test_kdconv_empty_array_and_empty_turn(tmp_path):
    raises_at(write(tmp_path, "empty.json", "[ ]"), 0, "no kdconv records found")
    path = write(tmp_path, "dev.json", '[\n{"messages": [{"message": "a"}, {"message": " "}]}]')
    raises_at(path, 2, "turn 1 (from 0) is empty")


# --- encodings, line endings, formats -----------------------------------------------------------------


def test_crlf_and_bom_files_read_like_plain_ones(tmp_path):
    tsv = write(tmp_path, "d.tsv", "source\ttarget\r\nab\tcd\r\n", bom=True)
    assert [(ex.source, ex.targets, ex.line) for ex in read_seq2seq(tsv)] == [("ab", ["cd"], 2)]
    lines = write(
        tmp_path, "d.jsonl", '{"source": "a", "target": "b"}\r\n{"source": "c", "target": "d"}\r\n', bom=True
    )
    assert [(ex.target, ex.line) for ex in read_seq2seq(lines)] == [("b", 1), ("d", 2)]
    array = write(tmp_path, "d.json", KDCONV.replace("\n", "\r\n"), bom=True)
    with pytest.raises(BadInputError, match=r"d\.json:10: "):
        read_seq2seq(array)
    assert read_seq2seq(array, on_bad_line="warn")[-1].line == 14


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.jsonl", '{"source": "a"}\n', "jsonl"),
        ("a.tsv", "a,b\n", "tsv"),
        ("a.txt", "a\tb\n", "tsv"),
        ("a.csv", "a\tb\n", "csv"),
        ("a.json", "\n[\n{}]", "kdconv"),
        ("a.json", '{"source": "a"}\n', "jsonl"),
        ("data", '\n{"source": "a"}\n', "jsonl"),
        ("data", "[\n]", "kdconv"),
        ("data", "a, b,c\n", "csv"),
        ("data", "a, b\tc\n", "tsv"),
    ],
)
def test_format_detection(tmp_path, name, text, expected):
    assert detect_seq2seq_format(write(tmp_path, name, text)) == expected


def test_explicit_format_overrides_the_suffix_and_unknown_ones_are_refused(tmp_path):
    path = write(tmp_path, "d.txt", "a,b\n")
    assert read_seq2seq(path, fmt="csv")[0].targets == ["b"]
    assert SEQ2SEQ_FORMATS == ("auto", "jsonl", "tsv", "csv", "kdconv")
    with pytest.raises(ValueError, match="unknown seq2seq file format 'xml'"):
        read_seq2seq(path, fmt="xml")
    with pytest.raises(ValueError, match="0-based"):
        read_seq2seq(path, source_column=-1)


# --- the real files -----------------------------------------------------------------------------------


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


def test_real_scitldr_dev_has_619_papers_and_1453_references():
    examples = read_seq2seq(shared("scitldr/SciTLDR-A/dev.jsonl"))
    assert len(examples) == 619
    assert sum(len(ex.targets) for ex in examples) == 1453
    assert {len(ex.targets) for ex in examples} <= {1, 2, 3, 4}
    assert all(ex.id for ex in examples) and len({ex.id for ex in examples}) == 619
    assert examples[-1].line == 619  # the last line has no newline and is still read


def test_real_tatoeba_has_26388_pairs_both_ways():
    path = shared("tatoeba_cmn_en/cmn.txt")
    en_zh = read_seq2seq(path)
    assert len(en_zh) == 26388
    assert (en_zh[0].source, en_zh[0].target) == ("Hi.", "嗨。")
    zh_en = read_seq2seq(path, source_column=1, target_column=0)
    assert [ex.source for ex in zh_en] == [ex.target for ex in en_zh]


def test_real_kdconv_film_dev_gives_one_pair_per_reply():
    examples = read_seq2seq(shared("kdconv/film/dev.json"), context_turns=3)
    assert len(examples) == 3858 - 150
    assert len({ex.id.split("/")[0] for ex in examples}) == 150
    assert examples[0].id == "dev-0/1" and examples[0].line == 2
    assert max(ex.source.count(" [SEP] ") for ex in examples) == 2  # at most three turns of context
