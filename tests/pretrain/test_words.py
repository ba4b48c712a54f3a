"""Tests for pretrain/words.py: word boundaries (basic, jieba, pretokenized) and word-start flags."""

from __future__ import annotations

import logging
import string
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertTokenizerFast

from bertkit.data.readers.text import split_words
from bertkit.errors import BertkitError
from bertkit.pretrain import words
from bertkit.pretrain.words import BOUNDARIES, encode_sentences, word_spans, word_start_flags

CHINESE = "我爱北京天安门迈向充满希望的新世纪讲话附"
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz0123456789.,!?'()（）",
    *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"],
    "play",
    "##ing",
    "the",
    "game",
    *CHINESE,
]


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizerFast:
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)


def texts(sentence: str, spans: list[tuple[int, int]]) -> list[str]:
    return [sentence[start:end] for start, end in spans]


def flags(sentence: str, tokenizer, boundaries: str) -> tuple[list[str], list[bool]]:
    ((ids, starts),) = encode_sentences([sentence], tokenizer, boundaries)
    return tokenizer.convert_ids_to_tokens(ids), starts


def test_basic_marks_the_first_sub_word(tokenizer):
    assert flags("Playing the game!", tokenizer, "basic") == (
        ["play", "##ing", "the", "game", "!"],
        [True, False, True, True, True],
    )


def test_basic_makes_each_chinese_character_a_word(tokenizer):
    assert texts("我爱北京。", word_spans("我爱北京。", "basic")) == ["我", "爱", "北", "京", "。"]
    assert flags("我爱北京", tokenizer, "basic")[1] == [True] * 4


def test_basic_cuts_as_split_words_on_every_bmp_character():
    # the regex stands in for split_words' loop on the hot path: it must cut every character alike
    text = "".join(f"ab{chr(point)}" for point in range(0x10000)) + "a\U00020000b\U000e0001c"
    assert word_spans(text, "basic") == [(start, end) for _, start, end in split_words(text)]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_basic_cuts_as_split_words_on_any_text(text):
    assert word_spans(text, "basic") == [(start, end) for _, start, end in split_words(text)]


def test_jieba_groups_the_characters_of_a_chinese_word(tokenizer):
    sentence = "我爱北京天安门"
    assert texts(sentence, word_spans(sentence, "jieba")) == ["我", "爱", "北京", "天安门"]
    assert flags(sentence, tokenizer, "jieba")[1] == [True, True, True, False, True, False, False]


def test_jieba_cuts_other_runs_as_basic_and_gives_no_space_words():
    sentence = "我用BERT模型, 3.14元 买A股 don't"
    expected = ["我", "用", "BERT", "模型", ",", "3", ".", "14", "元", "买", "A", "股", "don", "'", "t"]
    assert texts(sentence, word_spans(sentence, "jieba")) == expected


def test_jieba_is_quiet_and_imported_only_when_used(caplog, capfd):
    code = "import sys, bertkit.pretrain.words; print('jieba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False\n"
    words._jieba_tokenizer.cache_clear()
    caplog.set_level(logging.DEBUG)
    assert word_spans("天安门", "jieba") == [(0, 3)]
    assert not [r for r in caplog.records if r.name.startswith("jieba")]
    assert "prefix dict" not in capfd.readouterr().err


def test_pretokenized_follows_the_spaces(tokenizer):
    tokens, starts = flags("迈向 充满 希望 的 新 世纪", tokenizer, "pretokenized")
    assert tokens == list("迈向充满希望的新世纪")
    assert starts == [True, False, True, False, True, False, True, True, True, False]
    # punctuation inside a whitespace word stays in it
    assert flags("讲话（附 play", tokenizer, "pretokenized")[1] == [True, False, False, False, True]


def test_word_start_flags_edge_cases():
    two_words = [(0, 3), (3, 7)]
    assert word_start_flags([(0, 3), (3, 7)], two_words) == [True, True]
    # a token over two words starts a word; the next one, inside the second word, continues it
    assert word_start_flags([(0, 5), (5, 7)], two_words) == [True, False]
    assert word_start_flags([(0, 2), (3, 4)], [(0, 2)]) == [True, True]  # outside every word
    assert word_start_flags([(1, 4)], [(0, 4)]) == [True]  # the word's first character was dropped
    assert word_start_flags([], two_words) == []


def test_encode_sentences_checks_its_inputs(tokenizer):
    assert encode_sentences([], tokenizer, "basic") == []
    with pytest.raises(BertkitError, match="word boundaries must be one of"):
        encode_sentences(["a"], tokenizer, "spaces")
    with pytest.raises(BertkitError, match="object is not a fast tokenizer"):
        encode_sentences(["a"], object(), "basic")


# Latin with accents, digits, punctuation, spaces, and CJK in and out of the vocabulary (no Cf
# characters: the tokenizer drops those, so a word may then start with no token at its start).
ALPHABET = string.ascii_letters[:12] + "0123 ,.!'(）éÅ\u3000\t" + CHINESE + "猫狗。，"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet=ALPHABET, max_size=30), min_size=1, max_size=4),
    st.sampled_from(BOUNDARIES),
)
def test_flags_match_the_word_starts(tokenizer, sentences, boundaries):
    encoded = tokenizer(sentences, add_special_tokens=False, return_offsets_mapping=True)
    for sentence, (ids, starts), offsets in zip(
        sentences, encode_sentences(sentences, tokenizer, boundaries), encoded["offset_mapping"]
    ):
        assert len(starts) == len(ids)
        if ids:
            assert starts[0]
        word_starts = {start for start, _ in word_spans(sentence, boundaries)}
        assert starts == [start in word_starts for start, _ in offsets]
