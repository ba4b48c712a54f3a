"""Windows over long contexts and the way back: every context character is in exactly one owned token,
training labels point at the answer's sub-words, and answers decode to the exact characters of the
context (unicode, repeated spaces, Chinese, answers at window edges).

Model outputs are faked from the features' own labels, so a window read at the wrong position, or a
span read from a window that does not own its start, gives a wrong answer.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from bertkit.config import DataConfig, ModelConfig
from bertkit.errors import BertkitError
from bertkit.records import QaAnswer, QaExample
from bertkit.tasks.qa.task import IGNORE, QaConfig, QaTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# words of the vocabulary, words of several pieces, an accented word, punctuation, Chinese characters
WORDS = [
    "the",
    "alice",
    "key",
    "went",
    "zzq",
    "quixotic",
    "déjà",
    "vu",
    "-",
    ",",
    "'",
    "北",
    "京",
    "首都",
    "上海",
]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\n"]
_TOKENIZERS: dict[str, Any] = {}


def tokenizer_for(model: Path) -> Any:
    if str(model) not in _TOKENIZERS:
        _TOKENIZERS[str(model)] = AutoTokenizer.from_pretrained(model)
    return _TOKENIZERS[str(model)]


def make_task(model: Path, max_length: int = 24, doc_stride: int | None = 4, **qa: Any) -> QaTask:
    """A QaTask built the way tasks.make_task builds it."""
    qa.setdefault("max_question_length", 6)
    model_cfg = ModelConfig(name_or_path=str(model), max_length=max_length)
    return QaTask(QaConfig(doc_stride=doc_stride, **qa), model_cfg, DataConfig(), tokenizer_for(model))


class FakeOutputs:
    def __init__(self, start_logits: torch.Tensor, end_logits: torch.Tensor):
        self.start_logits, self.end_logits = start_logits, end_logits


def decode_from_labels(task: QaTask, records: list[QaExample], features: list, batch_size: int = 3) -> list:
    """Decode logits that peak at each window's labels; every window also gets a decoy start of higher
    score at a token it does not own, which the max-context rule must ignore."""
    decoder = task.decoder(records, features)
    order = list(range(len(features)))
    random.Random(0).shuffle(order)
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        batch = task.collate([features[i] for i in idx])
        starts = torch.randn(batch["input_ids"].shape) * 0.1
        ends = torch.randn(batch["input_ids"].shape) * 0.1
        for row, i in enumerate(idx):
            f = features[i]
            if f.start_position and f.start_position > 0:
                starts[row, f.start_position] = ends[row, f.end_position] = 10.0
            unowned = [k for k in range(len(f.offsets)) if not f.owned_begin <= k < f.owned_end]
            if unowned:
                starts[row, f.context_begin + unowned[0]] = 30.0
        decoder.add(FakeOutputs(starts, ends), batch)
    return decoder.predictions()


def context_tokens(task: QaTask, context: str) -> tuple[list[int], list[tuple[int, int]]]:
    return task.context_tokens([context])[context]


@st.composite
def contexts(draw) -> str:
    n = draw(st.integers(0, 60))
    words = draw(st.lists(st.sampled_from(WORDS), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from(SPACES), min_size=n + 1, max_size=n + 1))
    return "".join(g + w for g, w in zip(gaps, [*words, ""]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contexts(), st.integers(16, 40), st.data())
def test_windows_cover_every_context_character_exactly_once(qa_bert, context, max_length, data):
    room = max_length - 3 - 6
    stride = data.draw(st.integers(0, room - 1))
    task = make_task(qa_bert, max_length, stride)
    record = QaExample("q", "what is after key ?", context)
    features = task.encode([record])
    ids, offsets = context_tokens(task, context)
    owned_spans = []
    previous_end = None
    for f in features:
        assert len(f.input_ids) <= max_length
        first = offsets.index(f.offsets[0]) if f.offsets else 0
        n, begin = len(f.offsets), f.context_begin
        assert (
            f.input_ids[begin : begin + n] == ids[first : first + n]
            and f.offsets == offsets[first : first + n]
        )
        assert (f.input_ids[0], f.input_ids[-1]) == (task.tokenizer.cls_token_id, task.tokenizer.sep_token_id)
        assert set(f.token_type_ids[begin:]) <= {1} and set(f.token_type_ids[:begin]) == {0}
        if previous_end is not None:
            assert previous_end - first >= stride, "consecutive windows must share doc_stride tokens"
        previous_end = first + len(f.offsets)
        owned_spans += f.offsets[f.owned_begin : f.owned_end]
    assert owned_spans == offsets, "each context token owned by exactly one window, in order"
    assert task.uncovered([record], features) == 0
    for at, char in enumerate(context):
        if not char.isspace():
            assert sum(s <= at < e for s, e in owned_spans) == 1, f"character {at} ({char!r})"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contexts(), st.data())
def test_answers_decode_to_their_exact_characters(qa_bert, context, data):
    task = make_task(qa_bert, max_length=22, doc_stride=data.draw(st.integers(0, 6)), max_answer_length=5)
    ids, offsets = context_tokens(task, context)
    assume(ids)
    first = data.draw(st.integers(0, len(ids) - 1))
    last = data.draw(st.integers(first, min(first + 4, len(ids) - 1)))
    start, end = offsets[first][0], offsets[last][1]
    record = QaExample("q", "what is after key ?", context, [QaAnswer(context[start:end], start)])
    features = task.encode([record])
    labelled = [f for f in features if f.start_position]
    for f in labelled:
        a, b = f.start_position - f.context_begin, f.end_position - f.context_begin
        assert (f.offsets[a][0], f.offsets[b][1]) == (start, end)
    # the window that owns the answer's first token decides; it can only if the answer ends inside it
    owner = next(f for f in features if (start, offsets[first][1]) in f.offsets[f.owned_begin : f.owned_end])
    assume(owner in labelled)
    [prediction] = decode_from_labels(task, [record], features)
    assert (prediction.text, prediction.start, prediction.end) == (context[start:end], start, end)


CASES = [
    # unicode (accents that the uncased tokenizer strips), repeated spaces inside the answer
    ("Café  déjà-vu   at  the   Noël market", "déjà-vu   at"),
    ("the   alice  went", "alice"),
    # Chinese, no spaces between words
    ("北京是中国的首都，上海在东方。北京有很多大学。", "中国的首都"),
    ("北京是中国的首都，上海在东方。北京有很多大学。", "很多大学"),
    # an answer with a character the vocabulary lacks ([UNK]) and a zero-width space inside
    ("he met Ωmega at home", "Ωmega"),
    ("he went a\u200bb home", "a\u200bb"),
]


@pytest.mark.parametrize(("context", "answer"), CASES)
@pytest.mark.parametrize("max_length", [20, 64])  # short windows (several for the long contexts), or one
def test_answers_map_back_exactly(qa_bert, context, answer, max_length):
    task = make_task(qa_bert, max_length=max_length, doc_stride=2, max_question_length=4)
    start = context.index(answer)
    record = QaExample("q", "where ?", context, [QaAnswer(answer, start)])
    features = task.encode([record])
    assert len(features) == 1 or max_length == 20
    [prediction] = decode_from_labels(task, [record], features)
    assert (prediction.text, prediction.start, prediction.end) == (answer, start, start + len(answer))


@pytest.mark.parametrize("edge", ["first", "last"])
def test_answers_at_window_edges(qa_bert, edge):
    context = " ".join(["the", "went", "alice", "key", "bob", "home", "old"] * 4)
    task = make_task(qa_bert, max_length=16, doc_stride=3, max_question_length=4)
    ids, offsets = context_tokens(task, context)
    probe = task.encode([QaExample("q", "where ?", context)])
    window = probe[1]
    k = 0 if edge == "first" else len(window.offsets) - 1  # a token at the very edge of window 1
    s, e = window.offsets[k]
    record = QaExample("q", "where ?", context, [QaAnswer(context[s:e], s)])
    features = task.encode([record])
    [prediction] = decode_from_labels(task, [record], features)
    assert (prediction.text, prediction.start) == (context[s:e], s)


def test_windows_without_the_answer_point_at_cls_and_unplaced_answers_are_not_trained_on(qa_bert):
    context = " ".join(["the", "went", "alice", "key", "bob"] * 6)
    task = make_task(qa_bert, max_length=16, doc_stride=2)
    start = context.rindex("bob")
    features = task.encode([QaExample("q", "where ?", context, [QaAnswer("bob", start)])])
    positions = [(f.start_position, f.end_position) for f in features]
    assert positions[-1] != (0, 0) and positions[0] == (0, 0)
    assert task.tokenizer.decode(features[-1].input_ids[positions[-1][0] : positions[-1][1] + 1]) == "bob"
    unplaced = task.encode([QaExample("q", "where ?", context, [QaAnswer("dog", None)])])
    assert {(f.start_position, f.end_position) for f in unplaced} == {(IGNORE, IGNORE)}
    impossible = task.encode([QaExample("q", "where ?", context, [])])
    assert {(f.start_position, f.end_position) for f in impossible} == {(0, 0)}
    unlabelled = task.encode([QaExample("q", "where ?", context)])
    assert "start_positions" not in task.collate(unlabelled)


def test_long_questions_are_cut_to_the_maximum(qa_bert):
    task = make_task(qa_bert, max_length=20, doc_stride=2, max_question_length=3)
    features = task.encode([QaExample("q", "what is after key ? what is after key ?", "alice went home")])
    assert features[0].context_begin == 1 + 3 + 1


def test_every_question_gets_a_prediction_even_with_an_empty_context(qa_bert):
    task = make_task(qa_bert)
    records = [QaExample("a", "where ?", ""), QaExample("b", "where ?", "alice went home")]
    predictions = decode_from_labels(task, records, task.encode(records))
    assert [p.text for p in predictions][0] == "" and predictions[1].text in records[1].context


@pytest.mark.parametrize(
    ("max_length", "doc_stride", "message"),
    [
        (24, 15, "--doc-stride 15 (the overlap of consecutive windows) must be below the 15 context tokens"),
        (10, None, "--max-length 10 leaves no room for the context"),
    ],
)
def test_doc_stride_is_checked_against_the_window(qa_bert, max_length, doc_stride, message):
    with pytest.raises(BertkitError, match=re.escape(message)):
        make_task(qa_bert, max_length, doc_stride)


def test_the_default_doc_stride_fits_the_window(qa_bert):
    assert make_task(qa_bert, max_length=24, doc_stride=None).doc_stride == 7  # half of 24 - 3 - 6
    assert make_task(qa_bert, max_length=128, doc_stride=None, max_question_length=64).doc_stride == 30
    with pytest.raises(BertkitError, match="--stride is not used"):
        model_cfg = ModelConfig(name_or_path=str(qa_bert), max_length=64, stride=8)
        QaTask(QaConfig(), model_cfg, DataConfig(), tokenizer_for(qa_bert))
