"""Batches padded to a multiple of a few tokens (``--model.pad_multiple``): the lengths they get, and
that the extra padding changes no output of the model at any real position."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForTokenClassification, AutoTokenizer

from bertkit.config import DataConfig, ModelConfig
from bertkit.data.padding import batch_length, pad, padding_mask
from bertkit.tasks.ner.task import IGNORE, NerConfig, NerTask, TokenFeature

LABELS = ["O", "B-PER", "I-PER"]


@pytest.mark.parametrize(
    ("lengths", "multiple", "limit", "expected"),
    [
        ([3, 5], 1, None, 5),
        ([3, 5], 8, None, 5),  # short rows: rounding would add more than an eighth
        ([9, 15], 8, None, 15),
        ([17], 8, None, 18),  # 16-31: steps of 2
        ([33], 8, None, 36),  # 32-63: steps of 4
        ([64, 2], 8, None, 64),  # already a multiple
        ([65], 8, None, 72),  # 64 and more: steps of 8
        ([129], 16, None, 144),  # 128 and more: steps of 16
        ([65], 8, 70, 70),  # not past the window
        ([71], 8, 70, 71),  # ... but never shorter than a row
        ([], 8, None, 0),
    ],
)
def test_batch_length(lengths, multiple, limit, expected):
    assert batch_length([[0] * n for n in lengths], multiple, limit) == expected


def test_pad_and_mask_agree_at_a_given_length():
    rows = [[5, 6, 7], [8]]
    assert pad(rows, 0, length=6).tolist() == [[5, 6, 7, 0, 0, 0], [8, 0, 0, 0, 0, 0]]
    assert padding_mask(rows, 6).tolist() == [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    assert pad(rows, -1).shape == (2, 3)


@functools.cache
def tiny_tagger(path: str) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(LABELS)).eval()
    return model, AutoTokenizer.from_pretrained(path)


def ner_task(tiny_bert: Path, tokenizer: object, multiple: int, max_length: int) -> NerTask:
    model_cfg = ModelConfig(name_or_path=str(tiny_bert), max_length=max_length, pad_multiple=multiple)
    return NerTask(NerConfig(), model_cfg, DataConfig(), tokenizer, LABELS)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(2, 60), min_size=1, max_size=6),
    multiple=st.sampled_from([2, 8, 16]),
    seed=st.integers(0, 10**6),
)
def test_more_padding_changes_no_logit(tiny_bert, lengths, multiple, seed):
    model, tokenizer = tiny_tagger(str(tiny_bert))
    gen = torch.Generator().manual_seed(seed)
    features = [
        TokenFeature(torch.randint(5, len(tokenizer), (n,), generator=gen).tolist(), [0] * n, k, [])
        for k, n in enumerate(lengths)
    ]
    plain = ner_task(tiny_bert, tokenizer, 1, 60).collate(features)
    padded = ner_task(tiny_bert, tokenizer, multiple, 60).collate(features)
    width, longest = padded["input_ids"].shape[1], max(lengths)
    assert longest <= width <= min(longest + longest // 8, 60)  # never more than an eighth more
    assert width == 60 or width % min(multiple, 2 ** int(math.log2(max(longest // 8, 1)))) == 0
    assert (padded["labels"][:, max(lengths) :] == IGNORE).all()
    with torch.no_grad():
        short = model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"]).logits
        long = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    for row, n in enumerate(lengths):
        torch.testing.assert_close(long[row, :n], short[row, :n], atol=1e-5, rtol=1e-5)
