"""Tests for readers/conll.py and the token-file dispatch in readers/__init__.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from bertkit.data.readers import detect_token_format, read_token_file
from bertkit.data.readers.conll import read_conll, remove_position_suffix
from bertkit.errors import BadInputError, BertkitError

WNUT = SHARED_DATA / "wnut17"


def write(tmp_path: Path, text: str | bytes, name: str = "data.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def raises_at(path: Path, line: int, *fragments: str, **kw) -> BadInputError:
    """Read ``path`` expecting a BadInputError at ``line`` whose message holds every fragment."""
    with pytest.raises(BadInputError) as info:
        read_conll(path, **kw)
    err = info.value
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")
    for fragment in fragments:
        assert fragment in str(err)
    return err


SIMPLE = "John\tB-PER\nSmith\tI-PER\nruns\tO\n\nParis\tB-LOC\n"


def test_reads_sentences_with_lines_and_scheme(tmp_path):
    path = write(tmp_path, SIMPLE)
    corpus = read_conll(path)
    assert corpus.scheme == "iob2"
    assert corpus.path == str(path)
    first, second = corpus.examples
    assert first.tokens == ["John", "Smith", "runs"]
    assert first.tags == ["B-PER", "I-PER", "O"]
    assert first.lines == [1, 2, 3]
    assert second.tokens == ["Paris"] and second.lines == [5]
    assert first.path == str(path)


def test_logs_a_summary(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bertkit.data.readers")
    path = write(tmp_path, SIMPLE)
    read_conll(path)
    assert f"{path}: 2 sentences, 4 tokens, 1 documents, scheme iob2" in caplog.text


def test_whitespace_only_lines_break_sentences(tmp_path):
    # WNUT 2017 train separates sentences with a single TAB as often as with an empty line.
    path = write(tmp_path, "a\tO\n\t\nb\tO\n\n\n   \nc\tO\n \t \nd\tO")
    corpus = read_conll(path)
    assert [ex.tokens for ex in corpus.examples] == [["a"], ["b"], ["c"], ["d"]]
    assert [ex.line for ex in corpus.examples] == [1, 3, 7, 9]


def test_docstart_lines_start_documents(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
    text += "German JJ B-NP B-MISC\n\n-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n"
    corpus = read_conll(write(tmp_path, text))
    assert [ex.doc_id for ex in corpus.examples] == [0, 0, 1]
    assert corpus.examples[0].tags == ["B-ORG", "O"]  # tag_column=-1 picks the last of four columns
    assert corpus.examples[2].lines == [10]


def test_spaces_around_tab_separated_cells_and_trailing_tabs_belong_to_no_column(tmp_path):
    path = write(tmp_path, "Acme\tB-ORG \nInc\tI-ORG\t\nsaid \tO\t\n")
    corpus = read_conll(path)
    assert corpus.examples[0].tokens == ["Acme", "Inc", "said"]
    assert corpus.examples[0].tags == ["B-ORG", "I-ORG", "O"]  # no type "ORG " of its own


def test_germeval_comment_lines_are_skipped_and_a_hash_token_is_kept(tmp_path):
    text = "#\thttp://de.wikipedia.org/wiki/X\t[2009-10-17]\n1\tAlice\tB-PER\tO\n2\tsang\tO\tO\n\n"
    text += "#\thttp://example.org\t[2009-10-18]\n1\t#\tO\tO\n2\tBob\tB-PER\tO\n"
    corpus = read_conll(write(tmp_path, text, "germeval.tsv"), token_column=1, tag_column=2)
    assert [ex.tokens for ex in corpus.examples] == [["Alice", "sang"], ["#", "Bob"]]
    assert [ex.lines for ex in corpus.examples] == [[2, 3], [6, 7]]
    # a sentence that starts with the token "#" (two columns, like every token line) is no comment
    corpus = read_conll(write(tmp_path, "# O\nhello O\n\n# O\nthere O\n"))
    assert [ex.tokens for ex in corpus.examples] == [["#", "hello"], ["#", "there"]]


def test_docstart_without_blank_line_ends_the_sentence(tmp_path):
    corpus = read_conll(write(tmp_path, "a\tO\n-DOCSTART-\tO\nb\tO\n"))
    assert [(ex.tokens, ex.doc_id) for ex in corpus.examples] == [(["a"], 0), (["b"], 1)]


def test_bom_and_crlf(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfJohn\tB-PER\r\nruns\tO\r\n\r\nParis\tB-LOC\r\n")
    corpus = read_conll(path)
    assert corpus.examples[0].tokens == ["John", "runs"]
    assert corpus.examples[0].tags == ["B-PER", "O"]
    assert corpus.examples[1].tags == ["B-LOC"]


def test_whitespace_separated_columns(tmp_path):
    corpus = read_conll(write(tmp_path, "John  NNP B-PER\nruns VBZ   O\n"), token_column=0, tag_column=2)
    assert corpus.examples[0].tokens == ["John", "runs"]
    assert corpus.examples[0].tags == ["B-PER", "O"]


def test_tab_separated_tokens_may_hold_spaces(tmp_path):
    corpus = read_conll(write(tmp_path, "New York\tB-LOC\ncity\tO\n"))
    assert corpus.examples[0].tokens == ["New York", "city"]


def test_wrong_column_count_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, "a\tO\nb\tO\n\nc\tO\textra\n")
    raises_at(path, 4, "expected 2 columns (token, tag), found 3", "--on-bad-line warn")


def test_wrong_column_count_in_warn_mode_skips_and_counts(tmp_path, caplog):
    path = write(tmp_path, "a\tO\nb\tO\textra\nc\tO\n\nd\ne\tO\n")
    corpus = read_conll(path, on_bad_line="warn")
    assert [ex.tokens for ex in corpus.examples] == [["a", "c"], ["e"]]
    assert f"{path}: 2 line(s) with wrong column counts (first at line 2)" in caplog.text


def test_empty_token_column_is_an_error(tmp_path):
    raises_at(write(tmp_path, "a\tO\n\tO\n"), 2, "empty token column")


def test_unknown_tag_with_fixed_labels(tmp_path):
    path = write(tmp_path, "a\tB-PER\nb\tB-FOO\n")
    raises_at(path, 2, "unknown tag 'B-FOO'; expected one of B-PER, I-PER, O", labels=["O", "B-PER", "I-PER"])


def test_unknown_tag_in_warn_mode_becomes_o(tmp_path, caplog):
    path = write(tmp_path, "a\tB-PER\nb\tB-FOO\n\nc\tB-BAR\n")
    corpus = read_conll(path, labels=["O", "B-PER", "I-PER"], on_bad_line="warn")
    assert [ex.tags for ex in corpus.examples] == [["B-PER", "O"], ["O"]]
    assert "2 line(s) with unknown tags (first at line 2)" in caplog.text


def test_malformed_tag_is_an_error(tmp_path):
    raises_at(write(tmp_path, "a\tO\nb\tX-PER\n"), 2, "malformed tag 'X-PER'")


def test_forbidden_i_tag_names_its_line_and_suggests_a_scheme(tmp_path):
    path = write(tmp_path, "a\tB-PER\n\nb\tO\nc\tI-PER\nd\tI-PER\n")
    message = (
        "I-PER follows O; iob2 entities start with B- (the whole file is valid iob1: try --tag-scheme iob1)"
    )
    raises_at(path, 4, message, scheme="iob2")


def test_auto_detected_iob2_still_rejects_a_stray_i_start(tmp_path):
    # Like Weibo NER: mostly B- starts, so iob2 is detected, and the one I- start is reported.
    path = write(tmp_path, "a\tB-PER\nb\tI-PER\n\nc\tB-LOC\n\nd\tO\ne\tI-LOC\n")
    raises_at(path, 7, "I-LOC follows O")


def test_forbidden_tags_in_warn_mode_are_repaired(tmp_path, caplog):
    path = write(tmp_path, "a\tB-PER\n\nb\tO\nc\tI-PER\nd\tI-PER\n")
    corpus = read_conll(path, scheme="iob2", on_bad_line="warn")
    assert corpus.examples[1].tags == ["O", "B-PER", "I-PER"]
    assert "1 line(s) with tags iob2 forbids (first at line 4)" in caplog.text


def test_explicit_scheme_accepts_what_it_allows(tmp_path):
    path = write(tmp_path, "a\tI-PER\nb\tB-PER\nc\tO\n")
    corpus = read_conll(path, scheme="iob1")
    assert corpus.scheme == "iob1"
    assert corpus.examples[0].tags == ["I-PER", "B-PER", "O"]


def test_bioes_detected_and_checked(tmp_path):
    assert read_conll(write(tmp_path, "a\tB-X\nb\tE-X\nc\tS-Y\n")).scheme == "bioes"
    raises_at(write(tmp_path, "a\tB-X\nb\tO\nc\tS-Y\n"), 1, "B-X is followed by O")


@pytest.mark.parametrize("text", ["", "\n\n", " \t\n\n", "-DOCSTART- -X- O\n\n"])
def test_file_without_tokens_is_an_error(tmp_path, text):
    raises_at(write(tmp_path, text), 0, "no sentences found")


def test_invalid_utf8_names_line_and_byte(tmp_path):
    path = write(tmp_path, b"a\tO\nb\tO\n\nc\xff\tO\n")
    raises_at(path, 4, "not valid UTF-8 (byte 0xff at column 2); re-encode the file as UTF-8")


def test_invalid_utf8_after_a_bom_counts_columns_after_it(tmp_path):
    raises_at(write(tmp_path, b"\xef\xbb\xbfab\xc3\tO\n"), 1, "byte 0xc3 at column 3")


def test_latin1_file_is_an_error_not_mojibake(tmp_path):
    path = write(tmp_path, "Zürich\tB-LOC\n".encode("latin-1"))
    raises_at(path, 1, "byte 0xfc at column 2")


@pytest.mark.parametrize(
    ("token", "stripped"),
    [
        ("我0", "我"),
        ("学1", "学"),
        ("e12", "e"),
        ("30", "3"),
        ("512", "5"),
        ("��3", "��"),
        ("x", "x"),
        ("ab", "ab"),
    ],
)
def test_remove_position_suffix(token, stripped):
    assert remove_position_suffix(token) == stripped


def test_position_suffixes_are_stripped_only_when_asked(tmp_path):
    path = write(tmp_path, "我0\tO\n们1\tO\ne12\tB-ORG\n30\tO\n")
    assert read_conll(path, strip_position_suffix=True).examples[0].tokens == ["我", "们", "e", "3"]
    assert read_conll(path).examples[0].tokens == ["我0", "们1", "e12", "30"]


def test_no_tag_column_means_unlabelled(tmp_path):
    corpus = read_conll(write(tmp_path, "a\tO\nb\tO\n"), tag_column=None)
    assert corpus.examples[0].tags is None
    assert corpus.examples[0].tokens == ["a", "b"]


def test_single_column_file_is_unlabelled(tmp_path):
    corpus = read_conll(write(tmp_path, "a\nb\n\nc\n"))
    assert [ex.tags for ex in corpus.examples] == [None, None]
    assert corpus.scheme == "iob2"


def test_single_column_file_with_a_tagged_line_is_an_error(tmp_path):
    raises_at(write(tmp_path, "a\nb\tO\n"), 2, "expected 1 column (token), found 2")


def test_missing_tag_column_is_an_error(tmp_path):
    raises_at(write(tmp_path, "a\tb\tO\n"), 1, "tag column 5 does not exist", tag_column=5)


def test_unknown_on_bad_line_policy_is_rejected(tmp_path):
    with pytest.raises(BertkitError, match="on_bad_line"):
        read_conll(write(tmp_path, SIMPLE), on_bad_line="ignore")


# --- format dispatch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.conll", SIMPLE, "conll"),
        ("a.txt", SIMPLE, "conll"),
        ("a.conll", "one\ntoken\nper\nline\n", "conll"),
        ("a.txt", "A sentence.\nAnother one here.\n", "text"),
        ("a.txt", "John NNP B-PER\nruns VBZ O\n", "conll"),
        ("a.txt", "just\nwords\n", "text"),
        ("a.txt", "bare\ntokens\n\nof two\nsentences\n", "conll"),  # one a line, a blank line between
        ("sents", "Alice Smith went to Paris\nBob met Carol in London\n", "text"),  # no tag: plain text
        ("sents.in", "Alice Smith went\n\nBob met Carol in London today\n", "text"),
        ("odd.conll", "Alice PERSON\nwent OTHER\n", "conll"),  # the name decides: its bad tags are errors
        ("a.jsonl", '\n{"tokens": ["a"], "tags": ["O"]}\n', "jsonl"),
        ("a.json", '{"text": "a b", "label": {}}\n', "spans"),
    ],
)
def test_detect_token_format(tmp_path, name, text, expected):
    assert detect_token_format(write(tmp_path, text, name)) == expected


def test_detect_token_format_rejects_unknown_json(tmp_path):
    with pytest.raises(BadInputError, match=r"a\.jsonl:2: not valid JSON"):
        detect_token_format(write(tmp_path, '\n{"tokens": \n', "a.jsonl"))


def test_read_token_file_dispatches(tmp_path):
    corpus = read_token_file(write(tmp_path, "a\tI-X\nb\tB-X\n"), scheme="iob1")
    assert corpus.scheme == "iob1" and corpus.examples[0].tags == ["I-X", "B-X"]
    corpus = read_token_file(write(tmp_path, "Hello there.\n", "a.txt"))
    assert corpus.examples[0].tokens == ["Hello", "there", "."]
    with pytest.raises(ValueError, match="format"):
        read_token_file(write(tmp_path, SIMPLE), format="csv")


@pytest.mark.skipif(not WNUT.is_dir(), reason="WNUT 2017 data not present")
def test_wnut17_counts():
    train = read_token_file(WNUT / "wnut17train.conll")
    assert len(train.examples) == 3394
    assert sum(len(ex) for ex in train.examples) == 62730
    assert train.scheme == "iob2"
    assert len(read_conll(WNUT / "emerging.dev.conll").examples) == 1009


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.conll", SIMPLE),
        ("a.jsonl", '{"tokens": ["a"], "tags": ["B-X"]}\n'),
        ("a.jsonl", '{"text": "John", "entities": [{"start": 0, "end": 4, "label": "PER"}]}\n'),
        ("a.txt", "John runs.\n"),
    ],
)
def test_read_token_file_takes_the_same_options_for_every_format(tmp_path, name, text):
    # The NER task passes the CoNLL options whatever the format; tag_column=None means unlabelled input.
    options = {"token_column": 0, "scheme": "auto", "labels": None, "strip_position_suffix": True}
    path = write(tmp_path, text, name)
    assert read_token_file(path, tag_column=None, **options).examples[0].tags is None
    labelled = read_token_file(path, tag_column=-1, **options).examples[0].tags
    assert (labelled is None) == name.endswith(".txt")
