"""Word boundaries for whole-word masking, and sentences encoded into token ids that know where words start.

``word_spans`` cuts a sentence into words (``BOUNDARIES``); ``encode_sentences`` tokenises a batch of
sentences and flags, per token, whether it starts a word, so masking can take whole words.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

from bertkit.data.readers.text import CJK_RANGES, is_cjk
from bertkit.errors import BertkitError

BOUNDARIES = ("basic", "jieba", "pretokenized")

_WHITESPACE_WORD = re.compile(r"\S+")


def word_spans(sentence: str, boundaries: str) -> list[tuple[int, int]]:
    """The ``[start, end)`` character spans of the words of ``sentence``, in order, none overlapping.

    ``basic``: BERT's basic tokenizer (``split_words``): Latin words whole, punctuation and each CJK
    character alone. ``jieba``: Chinese words as jieba finds them, other runs cut as ``basic`` would.
    ``pretokenized``: the whitespace-separated words of a segmented text (punctuation inside stays).
    """
    if boundaries == "basic":
        return [match.span() for match in _basic_word().finditer(sentence)]
    if boundaries == "pretokenized":
        return [match.span() for match in _WHITESPACE_WORD.finditer(sentence)]
    if boundaries == "jieba":
        return jieba_spans(sentence)
    raise BertkitError(f"word boundaries must be one of {BOUNDARIES}, got {boundaries!r}")


@functools.cache
def _jieba_tokenizer() -> Any:
    import jieba  # imported on first use only: its dictionary takes about a second and 75 MB to load

    # jieba sets its own logger to DEBUG on import and reports the dictionary loading there
    logging.getLogger("jieba").setLevel(logging.WARNING)
    # a tokenizer of our own: words another caller adds to jieba's global one would change our cuts
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def jieba_spans(sentence: str, hmm: bool = False) -> list[tuple[int, int]]:
    """Words jieba finds made of Chinese characters only, as Chinese-BERT-wwm masked them; the rest
    (Latin, digits, punctuation, spaces, and mixed words such as ``A股``) is cut as ``basic`` would,
    since jieba also cuts ``3.14`` or ``don't`` its own way and gives spaces as words."""
    spans: list[tuple[int, int]] = []
    other = None  # where the current run of non-Chinese jieba words began
    # Without the HMM (which guesses unknown words) jieba agrees better with People's Daily's gold words
    # (benchmarks/jieba_vs_gold.py) and runs twice as fast.
    for word, start, end in _jieba_tokenizer().tokenize(sentence, mode="default", HMM=hmm):
        if all(is_cjk(char) for char in word):
            if other is not None:
                spans += _basic_spans(sentence, other, start)
                other = None
            spans.append((start, end))
        elif other is None:
            other = start
    if other is not None:
        spans += _basic_spans(sentence, other, len(sentence))
    return spans


def _basic_spans(text: str, begin: int, end: int) -> list[tuple[int, int]]:
    return [match.span() for match in _basic_word().finditer(text, begin, end)]


# BERT's (and split_words') punctuation: every ASCII non-alphanumeric printable, and Unicode's P*.
_ASCII_SYMBOLS = ((33, 47), (58, 64), (91, 96), (123, 126))


@functools.cache
def _basic_word() -> re.Pattern:
    """``split_words``' cuts as one regex: a punctuation mark or CJK character alone, or a run of other
    non-separator characters. Several times faster than its loop over characters, which matters on
    this hot path; the tests check that both agree. Built on first use (a third of a second)."""
    alone, separators = list(_ASCII_SYMBOLS) + list(CJK_RANGES), []
    for point in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(point))
        if category[0] == "P":
            alone.append((point, point))
        elif category in ("Zs", "Cc", "Cf") or chr(point).isspace():
            separators.append((point, point))
    return re.compile(f"[{_char_class(alone)}]|[^{_char_class(alone + separators)}]+")


def _char_class(ranges: list[tuple[int, int]]) -> str:
    """The inside of a regex ``[...]`` matching the code points of ``ranges`` (merged as they touch)."""
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return "".join(
        re.escape(chr(low)) + ("-" + re.escape(chr(high)) if high > low else "") for low, high in merged
    )


def word_start_flags(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Per token (its character ``offsets``), whether it starts a word of ``spans`` (both sorted).

    A token is False only when it starts strictly inside a word that the previous token also covers:
    the second sub-word of ``play ##ing``. So a token spanning two words starts a word if it starts
    one, the next token then continues it; and a token outside every word stands alone.
    """
    flags: list[bool] = []
    word = 0
    previous_end = None
    for start, end in offsets:
        while word < len(spans) and spans[word][1] <= start:
            word += 1
        inside = word < len(spans) and spans[word][0] < start
        flags.append(not (inside and previous_end is not None and previous_end > spans[word][0]))
        previous_end = end
    return flags


def encode_sentences(
    sentences: Sequence[str], tokenizer: Any, boundaries: str
) -> list[tuple[list[int], list[bool]]]:
    """For each sentence, its token ids without special tokens and, per token, whether it starts a word.

    ``tokenizer`` is a fast (Rust) Hugging Face tokenizer, called once on the whole batch: this is the
    hot path of preprocessing. The words come from ``word_spans(sentence, boundaries)``; the tokenizer
    sees each sentence as it is (for ``pretokenized`` with its spaces, which BERT tokenizers drop).
    """
    if boundaries not in BOUNDARIES:
        raise BertkitError(f"word boundaries must be one of {BOUNDARIES}, got {boundaries!r}")
    if not getattr(tokenizer, "is_fast", False):
        raise BertkitError(
            f"{type(tokenizer).__name__} is not a fast tokenizer: whole-word flags need its character "
            "offsets (load it with AutoTokenizer, use_fast=True)"
        )
    if not sentences:
        return []
    encoded = tokenizer(
        list(sentences),
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [
        (ids, word_start_flags(offsets, word_spans(sentence, boundaries)))
        for sentence, ids, offsets in zip(sentences, encoded["input_ids"], encoded["offset_mapping"])
    ]
