"""Property tests for tasks/ner.py: sub-word alignment, windows and their merge back give one tag per word.

Model outputs are faked: at each position a window owns, the logits put their maximum on the word's
target label; everywhere else (other windows' copies of the word, later sub-words, special tokens,
padding) they point at a wrong label, so reading the wrong position or window shows up as a wrong tag.
"""

from __future__ import annotations

import random
from collections import Counter
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import CITIES, FILLER, NAMES, SURNAME
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from bertkit.config import DataConfig, ModelConfig
from bertkit.data.tagschemes import repair_tags
from bertkit.data.windows import window_starts
from bertkit.records import TokenExample
from bertkit.tasks.ner.task import IGNORE, NerConfig, NerTask

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# vocabulary words, words of several sub-words (zzzz -> z ##z ##z ##z), a word the tokenizer drops
# entirely (U+200B, given [UNK]), words cut at punctuation, an upper-case word, an unknown character
WORDS = [
    *NAMES,
    *CITIES,
    *FILLER,
    SURNAME,
    ".",
    ",",
    "zzzz",
    "\u200b",
    "a.b",
    "Paris",
    "o'neil",
    "Ωmega",
    "tokyoo",
    "smithsmith",
]

_TOKENIZERS: dict[str, Any] = {}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tokenizer_for(tiny_bert: Path) -> Any:
    key = str(tiny_bert)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = AutoTokenizer.from_pretrained(tiny_bert)
    return _TOKENIZERS[key]


def make_task(
    tiny_bert: Path, max_length: int, stride: int = 0, scheme: str = "iob2", labels=LABELS, **ner: Any
) -> NerTask:
    """A NerTask built the way tasks.make_task builds it."""
    model_cfg = ModelConfig(name_or_path=str(tiny_bert), max_length=max_length, stride=stride)
    task = NerTask(NerConfig(**ner), model_cfg, DataConfig(), tokenizer_for(tiny_bert), list(labels))
    task.cfg.tag_scheme = scheme
    return task


_PIECES: dict[tuple[int, str], list[int]] = {}


def word_pieces(tokenizer: Any, word: str) -> list[int]:
    """The sub-word ids of one word, tokenized on its own ([UNK] when the tokenizer drops it)."""
    key = (id(tokenizer), word)
    if key not in _PIECES:
        _PIECES[key] = tokenizer(word, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
    return list(_PIECES[key])


class FakeOutputs:
    def __init__(self, logits: torch.Tensor):
        self.logits = logits


def feature_logits(
    feature, targets: list[list[str]], words_at: list[int | None], task: NerTask, rng: random.Random
) -> torch.Tensor:
    """Logits of one window: the target label at owned slots, a wrong label everywhere else.

    ``words_at`` gives, for each position of the window, the word of the record whose sub-word sits
    there (None for special tokens and context from other sentences).
    """
    k = len(task.labels)
    ids = task.label2id
    record_targets = targets[feature.record]
    logits = torch.zeros(len(feature.input_ids), k)
    for pos, word in enumerate(words_at):
        wrong = (ids[record_targets[word]] + 1) % k if word is not None else rng.randrange(k)
        logits[pos, wrong] = 8.0
    for pos, word in feature.slots:
        logits[pos] = 0.0
        logits[pos, ids[record_targets[word]]] = 8.0
    return logits


def positions_to_words(task: NerTask, feature, record: TokenExample) -> list[int | None]:
    """The word of ``record`` behind each position of ``feature`` (None for specials and context).

    Found from the slots: the owned word at ``pos`` starts there, and sub-words are contiguous.
    """
    tokenizer = task.tokenizer
    pieces = [word_pieces(tokenizer, w) for w in record.tokens]
    out: list[int | None] = [None] * len(feature.input_ids)
    if not feature.slots:
        return out
    pos0, w0 = feature.slots[0]
    first = [0, *accumulate(len(p) for p in pieces)]
    # flat index of position p is first[w0] + (p - pos0); map it back to a word if it is in range
    owner_of_flat = [w for w, p in enumerate(pieces) for _ in p]
    lo, hi = len(task.prefix_ids), len(feature.input_ids) - len(task.suffix_ids)
    for p in range(lo, hi):
        flat = first[w0] + (p - pos0)
        if 0 <= flat < len(owner_of_flat):
            out[p] = owner_of_flat[flat]
    return out


def decode(
    task: NerTask,
    records: list[TokenExample],
    features: list,
    targets: list[list[str]],
    method: str,
    batch_size: int,
    rng: random.Random,
) -> list:
    """Run fake model outputs through collate and the decoder, batches in a shuffled order."""
    task.cfg.decode = method
    decoder = task.decoder(records, features)
    logits = [
        feature_logits(f, targets, positions_to_words(task, f, records[f.record]), task, rng)
        for f in features
    ]
    order = list(range(len(features)))
    rng.shuffle(order)
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        batch = task.collate([features[i] for i in idx])
        length = batch["input_ids"].shape[1]
        padded = torch.randn(len(idx), length, len(task.labels)) * 4  # padding: noise the decoder must skip
        for b, i in enumerate(idx):
            padded[b, : len(logits[i])] = logits[i]
        decoder.add(FakeOutputs(padded), batch)
    return decoder.predictions()


def check_alignment(task: NerTask, records: list[TokenExample], features: list, context: bool) -> None:
    """Every word owned by exactly one slot, at its first sub-word; labels only there; windows are slices."""
    tokenizer = task.tokenizer
    assert [f.record for f in features] == sorted(f.record for f in features)
    for r, record in enumerate(records):
        pieces = [word_pieces(tokenizer, w) for w in record.tokens]
        flat = [t for p in pieces for t in p]
        first = [0, *accumulate(len(p) for p in pieces)]
        mine = [f for f in features if f.record == r]
        owned = Counter()
        for f in mine:
            assert len(f.input_ids) <= task.model_cfg.max_length
            assert f.input_ids[: len(task.prefix_ids)] == task.prefix_ids
            assert f.input_ids[len(f.input_ids) - len(task.suffix_ids) :] == task.suffix_ids
            expected_labels = [IGNORE] * len(f.input_ids)
            for pos, w in f.slots:
                owned[w] += 1
                end = min(pos + len(pieces[w]), len(f.input_ids) - len(task.suffix_ids))
                assert f.input_ids[pos:end] == pieces[w][: end - pos]  # the word's sub-words start here
                expected_labels[pos] = task.label2id[record.tags[w]]
            assert f.labels == expected_labels
        assert owned == Counter(range(len(record))), "each word must be owned by exactly one window"
        if not context:
            starts = window_starts(len(flat), task.window, task.stride)
            assert len(mine) == len(starts)
            for f, start in zip(mine, starts):
                assert f.input_ids == [*task.prefix_ids, *flat[start : start + task.window], *task.suffix_ids]
                assert all(pos - len(task.prefix_ids) + start == first[w] for pos, w in f.slots)


@st.composite
def words_and_tags(draw) -> list[tuple[str, str]]:
    # the length first: plain st.lists rarely grows long enough to need several windows
    n = draw(st.integers(0, 80))
    return draw(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(LABELS)), min_size=n, max_size=n))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    sentences=st.lists(st.tuples(words_and_tags(), st.integers(0, 1)), min_size=1, max_size=4),
    max_length=st.integers(4, 40),
    stride=st.integers(0, 40),
    context=st.booleans(),
    batch_size=st.integers(1, 5),
    rng=st.randoms(use_true_random=False),
)
def test_encode_then_decode_gives_back_every_word(
    tiny_bert, sentences, max_length, stride, context, batch_size, rng
):
    raw = [[tag for _, tag in pairs] for pairs, _ in sentences]
    gold = [repair_tags(tags, "iob2") for tags in raw]  # valid IOB2
    records = [
        TokenExample([w for w, _ in pairs], tags, doc_id=doc, path="mem.conll")
        for (pairs, doc), tags in zip(sentences, gold)
    ]
    task = make_task(tiny_bert, max_length, stride, document_context=context)
    features = task.encode(records)
    check_alignment(task, records, features, context)

    # argmax gives back any tag sequence, valid or not; Viterbi gives back a valid one
    for method, targets in (("argmax", raw), ("viterbi", gold)):
        predictions = decode(task, records, features, targets, method, batch_size, rng)
        assert [p.tags for p in predictions] == targets, method
        assert all(
            len(p.probs) == len(r) and all(q > 0.99 for q in p.probs) for p, r in zip(predictions, records)
        )


def test_word_dropped_by_the_tokenizer_becomes_unk(tiny_bert):
    task = make_task(tiny_bert, 16)
    (feature,) = task.encode([TokenExample(["alice", "\u200b", "zzzz"], ["B-PER", "O", "B-LOC"])])
    tok = task.tokenizer
    assert feature.input_ids == [
        tok.cls_token_id,
        *word_pieces(tok, "alice"),
        tok.unk_token_id,
        *word_pieces(tok, "zzzz"),
        tok.sep_token_id,
    ]
    assert feature.slots == [(1, 0), (2, 1), (3, 2)]
    assert task.uncovered([TokenExample(["alice", "\u200b", "zzzz"])], [feature]) == 0


# --- label_all_subwords -------------------------------------------------------------------------------


def subword_labels(task: NerTask, tokens: list[str], tags: list[str]) -> list[list[str | None]]:
    features = task.encode([TokenExample(tokens, tags)])
    return [[None if i == IGNORE else task.labels[i] for i in f.labels] for f in features]


def test_label_all_subwords_continues_b_as_i(tiny_bert):
    task = make_task(tiny_bert, 40, label_all_subwords=True)
    tokens = ["zzzz", "smith", "went", "tokyoo", "a.b"]  # sub-words: 4, 1, 1, 2, 3
    tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    assert subword_labels(task, tokens, tags) == [
        [
            None,
            "B-PER",
            "I-PER",
            "I-PER",
            "I-PER",  # zzzz: a B- word continues as I-
            "I-PER",  # smith
            "O",  # went
            "B-LOC",
            "I-LOC",  # tokyo ##o
            "I-LOC",
            "I-LOC",
            "I-LOC",  # a . b: an I- word stays I-
            None,
        ]
    ]
    # without the option only the first sub-word of each word carries a label
    plain = make_task(tiny_bert, 40)
    assert subword_labels(plain, tokens, tags) == [
        [None, "B-PER", None, None, None, "I-PER", "O", "B-LOC", None, "I-LOC", None, None, None]
    ]


def test_label_all_subwords_in_bmes_continues_b_as_m(tiny_bert):
    labels = ["O", "B-PER", "M-PER", "E-PER", "S-PER"]
    task = make_task(tiny_bert, 40, scheme="bmes", labels=labels, label_all_subwords=True)
    assert subword_labels(task, ["zzzz", "smith"], ["B-PER", "E-PER"]) == [
        [None, "B-PER", "M-PER", "M-PER", "M-PER", "E-PER", None]
    ]


def test_label_all_subwords_across_windows(tiny_bert):
    """A word cut by a window edge is labelled only in the window that owns it, up to that window's end."""
    task = make_task(tiny_bert, 6, 2, label_all_subwords=True)  # 4 sub-words per window, 2 shared
    tokens = ["went", "zzzz", "alice", "zzzz", "home"]
    tags = ["O", "B-PER", "O", "B-LOC", "O"]
    features = task.encode([TokenExample(tokens, tags)])
    pieces = [word_pieces(task.tokenizer, w) for w in tokens]
    continuation = {"B-PER": "I-PER", "B-LOC": "I-LOC", "O": "O"}
    labelled = Counter()
    for f in features:
        expected = [IGNORE] * len(f.input_ids)
        for pos, w in f.slots:
            expected[pos] = task.label2id[tags[w]]
            for p in range(pos + 1, min(pos + len(pieces[w]), len(f.input_ids) - 1)):
                expected[p] = task.label2id[continuation[tags[w]]]
                labelled[w] += 1
        assert f.labels == expected
    assert len(features) > 2 and labelled  # the case really has several windows and continuations


# --- document_context ---------------------------------------------------------------------------------


def document(tiny_bert: Path) -> list[TokenExample]:
    return [
        TokenExample(["alice", "went", "home", "today"], ["B-PER", "O", "O", "O"], doc_id=0, path="d.conll"),
        TokenExample(["bob", "saw", "paris"], ["B-PER", "O", "B-LOC"], doc_id=0, path="d.conll"),
        TokenExample(["the", "big", "city", "then"], ["O", "O", "O", "O"], doc_id=0, path="d.conll"),
        TokenExample(["carol", "smith"], ["B-PER", "I-PER"], doc_id=1, path="d.conll"),
    ]


def flat_ids(task: NerTask, record: TokenExample) -> list[int]:
    return [t for w in record.tokens for t in word_pieces(task.tokenizer, w)]


def test_document_context_fills_the_window_with_neighbouring_sentences(tiny_bert):
    task = make_task(tiny_bert, 40, document_context=True)
    records = document(tiny_bert)
    features = task.encode(records)
    a, b, c, d = (flat_ids(task, r) for r in records)
    cls, sep = task.prefix_ids, task.suffix_ids
    assert [f.record for f in features] == [0, 1, 2, 3]
    assert features[1].input_ids == [*cls, *a, *b, *c, *sep]
    assert features[0].input_ids == [*cls, *a, *b, *c, *sep]  # the first sentence looks ahead only
    assert features[3].input_ids == [*cls, *d, *sep]  # nothing from another document
    # the sentence's own words keep their labels; the context is never labelled
    own = len(cls) + len(a)
    assert features[1].slots == [(own + i, i) for i in range(3)]
    assert features[1].labels == [IGNORE] * own + [task.label2id[t] for t in records[1].tags] + (
        [IGNORE] * (len(c) + len(sep))
    )
    predictions = decode(task, records, features, [r.tags for r in records], "viterbi", 2, random.Random(0))
    assert [p.tags for p in predictions] == [r.tags for r in records]


def test_document_context_keeps_the_nearest_sub_words_when_space_is_short(tiny_bert):
    task = make_task(tiny_bert, 2 + 3 + 4, document_context=True)  # window 7: "bob saw paris" + 4
    records = document(tiny_bert)
    a, b, c, _ = (flat_ids(task, r) for r in records)
    assert len(b) == 3 and len(a) >= 4 and len(c) >= 4
    feature = task.encode(records)[1]
    inner = feature.input_ids[len(task.prefix_ids) : len(feature.input_ids) - len(task.suffix_ids)]
    assert len(inner) == task.window  # the free space is used
    left = inner[: inner.index(b[0])]
    right = inner[len(left) + len(b) :]
    assert inner[len(left) : len(left) + len(b)] == b
    assert left and right  # both sides get some context
    assert left == a[len(a) - len(left) :]  # the end of the sentence before
    assert right == c[: len(right)]  # the start of the sentence after


def test_document_context_skips_sentences_that_fill_the_window(tiny_bert):
    task = make_task(tiny_bert, 8, 2, document_context=True)  # window 6
    records = [
        TokenExample(["zzzz", "zzzz"], ["B-PER", "I-PER"], doc_id=0, path="d"),
        TokenExample(["alice"], ["B-PER"], doc_id=0, path="d"),
    ]
    features = task.encode(records)
    long_windows = [f for f in features if f.record == 0]
    z = flat_ids(task, records[0])
    assert [f.input_ids[1:-1] for f in long_windows] == [z[s : s + 6] for s in window_starts(len(z), 6, 2)]
    assert sum(len(f.slots) for f in long_windows) == 2
