"""Tests for readers/text.py: BERT-style word splitting with offsets, and one-text-per-line files."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from bertkit.data.readers.text import read_text, split_words, tagged_words
from bertkit.errors import BadInputError


def words(text: str) -> list[str]:
    return [w for w, _, _ in split_words(text)]


def test_split_words_keeps_offsets():
    assert split_words("Hello, world!") == [("Hello", 0, 5), (",", 5, 6), ("world", 7, 12), ("!", 12, 13)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我爱北京。", ["我", "爱", "北", "京", "。"]),
        ("BERT模型2019年发布", ["BERT", "模", "型", "2019", "年", "发", "布"]),
        ("$5.00 (approx)", ["$", "5", ".", "00", "(", "approx", ")"]),
        ("don't", ["don", "'", "t"]),
        ("a\u3000b\u00a0c\td\r\ne", ["a", "b", "c", "d", "e"]),  # ideographic and no-break spaces separate
        ("e\u0301té", ["e\u0301té"]),  # a combining accent stays in its word
        ("ok😀ok", ["ok😀ok"]),  # emoji are symbols (So), not punctuation: BERT keeps them in the word
        ("a\u200bb", ["a", "b"]),  # a zero-width space (Cf) ends the word
        ("", []),
        ("   ", []),
    ],
)
def test_split_words(text, expected):
    assert words(text) == expected


def test_split_words_chinese_offsets():
    text = "叶老桂博士"
    assert split_words(text) == [(c, i, i + 1) for i, c in enumerate(text)]


# Characters BERT's tokenizers agree on (HF tokenizers' CJK table has 0x2B920 where BERT has 0x2B820,
# and Unicode versions differ, so the comparison sticks to a fixed alphabet).
ALPHABET = (
    string.printable.replace("\x0b", "").replace("\x0c", "")
    + "éßü¿«»—–…“”‘’。，！？、《》我爱北京中文ㄅあア한😀€£°\u00a0\u3000\u2003\uf900\U00020000"
)
_NORMALIZE = BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
_PRE_TOKENIZE = BertPreTokenizer()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_split_words_matches_bert_pre_tokenization(text):
    reference = [w for w, _ in _PRE_TOKENIZE.pre_tokenize_str(_NORMALIZE.normalize_str(text))]
    assert words(text) == reference


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_split_words_offsets_cover_the_words_in_order(text):
    last_end = 0
    for word, start, end in split_words(text):
        assert text[start:end] == word
        assert word and not any(c.isspace() for c in word)
        assert start >= last_end
        last_end = end


def write(tmp_path: Path, data: bytes, name: str = "input.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_read_text_keeps_every_line_even_empty_ones(tmp_path):
    path = write(tmp_path, "Hello world.\n\n我爱北京\r\nlast line without newline".encode())
    corpus = read_text(path)
    assert len(corpus.examples) == 4
    first, empty, chinese, last = corpus.examples
    assert first.tokens == ["Hello", "world", "."] and first.tags is None
    assert first.text == "Hello world." and first.offsets == [(0, 5), (6, 11), (11, 12)]
    assert first.lines == [1, 1, 1]
    assert empty.tokens == [] and empty.text == "" and empty.line == 2  # its output row says where it was
    assert chinese.text == "我爱北京" and chinese.tokens == ["我", "爱", "北", "京"]  # no stray \r
    assert chinese.lines == [3] * 4
    assert last.tokens == ["last", "line", "without", "newline"]


def test_read_text_keeps_u2028_inside_a_line(tmp_path):
    corpus = read_text(write(tmp_path, "a\u2028b\nc\n".encode()))
    assert [ex.text for ex in corpus.examples] == ["a\u2028b", "c"]


def test_read_text_empty_file_is_an_error(tmp_path):
    path = write(tmp_path, b"")
    with pytest.raises(BadInputError, match="no lines found") as info:
        read_text(path)
    assert str(path) in str(info.value)


def test_read_text_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"fine\nalso fine\n\x80bad\n")
    with pytest.raises(BadInputError) as info:
        read_text(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: not valid UTF-8 (byte 0x80 at column 1)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("中国CPL2011赛季", ["中", "国", "C", "P", "L", "2", "0", "1", "1", "赛", "季"]),
        ("vs ac米兰", ["v", "s", "a", "c", "米", "兰"]),  # separators belong to no word
        ("Germans in CPL2011", ["Germans", "in", "CPL2011"]),  # no Chinese: BERT's words
    ],
)
def test_ner_tags_every_character_of_a_text_with_chinese(text, expected):
    assert [w for w, _, _ in tagged_words(text)] == expected
    assert all(text[s:e] == w for w, s, e in tagged_words(text))
