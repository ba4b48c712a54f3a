"""Tests for pretrain/vocab.py: what is saved loads back with AutoTokenizer and tokenizes as trained."""

from __future__ import annotations

import json
import logging
import random
import unicodedata
from collections.abc import Iterator

import pytest
from tokenizers import Tokenizer, models
from transformers import AutoTokenizer

from bertkit.errors import BertkitError
from bertkit.pretrain.vocab import SPECIAL_TOKENS, VocabConfig, _restrict_to_alphabet, train_vocab

WORDS = ["Paris", "London", "café", "naïve", "the", "river", "flows", "quietly", "through", "old", "town"]
WORDS += ["Alice", "met", "Bob", "under", "bridges", "and", "towers", "at", "dawn", "Søren"]
RARE_WORD = "þorn"  # its "þ" is seen once, below min_frequency=2
CJK = [chr(0x4E00 + i) for i in range(1500)]  # more distinct characters than tokenizers' usual limit of 1000
RARE_CJK = [chr(0x9000 + i) for i in range(5)]  # seen once each


def english_lines(n: int = 300, seed: int = 0, rare: bool = True) -> Iterator[str]:
    rng = random.Random(seed)
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 12))]
        if rare and i == 7:
            words.append(RARE_WORD)
        yield " ".join(words)


def chinese_lines(times: int = 3, seed: int = 0) -> Iterator[str]:
    """Each of the 1500 characters ``times`` times, 20 a line, then the rare ones once each."""
    rng = random.Random(seed)
    for _ in range(times):
        order = CJK[:]
        rng.shuffle(order)
        for i in range(0, len(order), 20):
            yield "".join(order[i : i + 20])
    yield "".join(RARE_CJK)


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def round_trip(tokenizer, text: str) -> str:
    return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False))


def test_cased_english_loads_back_and_keeps_case(tmp_path):
    out = tmp_path / "vocab"
    report = train_vocab(english_lines(), out, VocabConfig(vocab_size=200))
    tokenizer = AutoTokenizer.from_pretrained(out)
    vocab_lines = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(tokenizer) == report.vocab_size == len(vocab_lines)
    assert report.requested_size == 200
    for line in english_lines(20, seed=1, rare=False):
        assert round_trip(tokenizer, line) == line
    assert "Paris" in tokenizer.get_vocab()
    assert "é" in tokenizer.get_vocab() and "e" in tokenizer.get_vocab()


def test_uncased_english_lowercases_and_strips_accents(tmp_path):
    out = tmp_path / "vocab"
    train_vocab(english_lines(), out, VocabConfig(vocab_size=200, lowercase=True))
    tokenizer = AutoTokenizer.from_pretrained(out)
    for line in english_lines(20, seed=1, rare=False):
        assert round_trip(tokenizer, line) == strip_accents(line.lower())
    assert round_trip(tokenizer, "Café in PARIS") == "cafe in paris"
    assert not any(c.isupper() or c == "é" for c in tokenizer.get_vocab() if c not in SPECIAL_TOKENS)


def test_special_tokens_have_the_ids_in_the_files(tmp_path):
    out = tmp_path / "vocab"
    train_vocab(english_lines(), out, VocabConfig(vocab_size=200))
    tokenizer = AutoTokenizer.from_pretrained(out)
    saved = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    vocab_lines = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    for i, token in enumerate(SPECIAL_TOKENS):
        assert saved[token] == i == tokenizer.convert_tokens_to_ids(token)
        assert vocab_lines[i] == token
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id) == (0, 1, 4)
    pair = tokenizer("the river", "old town")
    tokens = tokenizer.convert_ids_to_tokens(pair["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    first_sep = tokens.index("[SEP]")
    assert pair["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)


def test_characters_below_min_frequency_are_dropped_and_counted_as_unk(tmp_path):
    report = train_vocab(english_lines(), tmp_path / "vocab", VocabConfig(vocab_size=200))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "vocab")
    vocab = tokenizer.get_vocab()
    assert "þ" not in vocab and "##þ" not in vocab and not any("þ" in token for token in vocab)
    assert "ø" in vocab or "##ø" in vocab  # "Søren" is frequent
    assert tokenizer.tokenize(RARE_WORD) == ["[UNK]"]
    # the one rare word among ~3000 tokens: measured, and small
    assert 0 < report.unk_rate < 0.002


@pytest.mark.parametrize("lowercase", [False, True])
def test_characters_are_counted_after_normalisation(tmp_path, lowercase):
    # "Ŧ" and "ŧ" are each seen once; lowercased, they are one character seen twice
    texts = [*english_lines(), "the Ŧown", "the ŧown"]
    train_vocab(iter(texts), tmp_path / "vocab", VocabConfig(vocab_size=200, lowercase=lowercase))
    vocab = AutoTokenizer.from_pretrained(tmp_path / "vocab").get_vocab()
    assert ("ŧ" in vocab) == lowercase and "Ŧ" not in vocab


def test_chinese_keeps_every_character_seen_twice_beyond_a_limit_of_1000(tmp_path, caplog):
    out = tmp_path / "vocab"
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.vocab"):
        report = train_vocab(chinese_lines(), out, VocabConfig(vocab_size=1000))
    tokenizer = AutoTokenizer.from_pretrained(out)
    vocab = tokenizer.get_vocab()
    assert all(char in vocab for char in CJK)
    assert not any(char in vocab for char in RARE_CJK)  # seen once: below min_frequency
    # CJK ideographs are always words of one character, so "##X" forms could never be produced
    assert not any(token.startswith("##") for token in vocab)
    assert report.alphabet_size == 1500
    assert report.vocab_size == len(tokenizer) == len(SPECIAL_TOKENS) + 1500
    assert "not the 1000 asked for" in caplog.text
    assert report.unk_rate == pytest.approx(5 / (3 * 1500 + 5))  # the five rare characters only
    # --chinese-chars: every ideograph seen becomes a token, however rare
    every = train_vocab(chinese_lines(), tmp_path / "every", VocabConfig(vocab_size=1000, chinese_chars=True))
    assert every.alphabet_size == 1505 and every.unk_rate == 0
    assert all(char in AutoTokenizer.from_pretrained(tmp_path / "every").get_vocab() for char in RARE_CJK)
    for line in chinese_lines(1, seed=2):
        if not any(c in RARE_CJK for c in line):
            assert round_trip(tokenizer, line).replace(" ", "") == line


def test_an_explicit_limit_of_1000_loses_chinese_characters_unless_exempt(tmp_path):
    limited = train_vocab(chinese_lines(), tmp_path / "a", VocabConfig(vocab_size=1000, limit_alphabet=1000))
    assert limited.alphabet_size == 1000
    assert limited.unk_rate > 0.3
    exempt = VocabConfig(vocab_size=1000, limit_alphabet=1000, chinese_chars=True)
    kept = train_vocab(chinese_lines(), tmp_path / "b", exempt)
    assert kept.alphabet_size == 1505  # the rare ones too: every ideograph seen
    vocab = AutoTokenizer.from_pretrained(tmp_path / "b").get_vocab()
    assert all(char in vocab for char in CJK)


def test_the_same_pieces_get_the_same_ids_whatever_the_trainers_order():
    # tokenizers' trainer numbers pieces of equal count in hash-map order, new in every run (its issue
    # 1794; which pieces win a tie at the end of the vocabulary varies as well, and stays so)
    pieces = ["a", "b", "##a", "##b", "ab", "##ab", "ba"]
    ids = []
    for order in (pieces, pieces[::-1]):
        vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *order])}
        tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
        _restrict_to_alphabet(tokenizer, {"a", "b"})
        ids.append(tokenizer.get_vocab())
    assert ids[0] == ids[1]
    assert [t for t, _ in sorted(ids[0].items(), key=lambda kv: kv[1])] == [
        *SPECIAL_TOKENS, "a", "b", "##a", "##b", "ab", "ba", "##ab",
    ]  # fmt: skip


def test_vocab_size_is_honoured_when_the_alphabet_is_small(tmp_path, caplog):
    lines = [f"w{i} w{i} w{i} lorem ipsum dolor" for i in range(200)]
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.vocab"):
        report = train_vocab(iter(lines), tmp_path / "vocab", VocabConfig(vocab_size=120))
    assert report.vocab_size == 120
    assert caplog.text == ""


@pytest.mark.parametrize("texts", [[], ["", "   ", "\t"]])
def test_an_empty_corpus_is_an_error_and_writes_nothing(tmp_path, texts):
    with pytest.raises(BertkitError, match="no text"):
        train_vocab(iter(texts), tmp_path / "vocab", VocabConfig())
    assert list(tmp_path.iterdir()) == []


def test_a_corpus_with_no_character_seen_often_enough_is_an_error(tmp_path):
    with pytest.raises(BertkitError, match="no character is seen min_frequency=2 times"):
        train_vocab(iter(["a b c"]), tmp_path / "vocab", VocabConfig())
    assert list(tmp_path.iterdir()) == []


def test_saving_leaves_no_scratch_and_keeps_other_files(tmp_path):
    train_vocab(english_lines(), tmp_path / "new", VocabConfig(vocab_size=200))
    assert [p.name for p in tmp_path.iterdir()] == ["new"]
    assert {p.name for p in (tmp_path / "new").iterdir()} == {
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "vocab.txt").write_text("stale\n")
    report = train_vocab(english_lines(), run, VocabConfig(vocab_size=200))
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    }
    assert len((run / "vocab.txt").read_text(encoding="utf-8").splitlines()) == report.vocab_size


def test_texts_must_be_strings(tmp_path):
    with pytest.raises(BertkitError, match="got bytes at item 2"):
        train_vocab(iter(["fine", b"bytes"]), tmp_path / "vocab", VocabConfig())


def test_bad_config_names_the_field():
    with pytest.raises(BertkitError, match="vocab_size"):
        VocabConfig(vocab_size=3)
    with pytest.raises(BertkitError, match="limit_alphabet"):
        VocabConfig(limit_alphabet=-1)
