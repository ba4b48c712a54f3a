"""Tests for tasks/qa/decoding.py: the n-best span search of one window and the merge over windows,
with the no-answer decision of SQuAD v2.0."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from bertkit.tasks.qa.decoding import SpanDecoder, window_candidates

OFFSETS = [(0, 3), (4, 7), (8, 11), (12, 15), (16, 19)]  # "aaa bbb ccc ddd eee"
CONTEXT = "aaa bbb ccc ddd eee"


def logits(values: dict[int, float], length: int = 8) -> np.ndarray:
    out = np.zeros(length, dtype=np.float32)
    for position, value in values.items():
        out[position] = value
    return out


def test_starts_only_where_the_window_owns_ends_anywhere_after():
    # context at positions 2..6; the best start (token 0) is not owned (owned: tokens 2..4)
    starts = logits({2: 9.0, 4: 5.0, 6: 3.0})
    ends = logits({2: 1.0, 5: 4.0, 6: 2.0})
    spans = window_candidates(starts, ends, 2, OFFSETS, (2, 5), n_best=5, max_answer=30)
    best = max(spans, key=lambda c: c.score)
    assert (best.score, best.start, best.end) == (5.0 + 4.0, 8, 15)  # "ccc ddd", not token 0's 9 + 4
    assert all(c.start >= OFFSETS[2][0] for c in spans)  # no start before the owned range
    assert all(c.end >= c.start for c in spans)


def test_the_maximum_answer_length_and_n_best():
    starts = logits({2: 5.0, 3: 4.0})
    ends = logits({6: 5.0, 3: 1.0})
    unlimited = max(window_candidates(starts, ends, 2, OFFSETS, (0, 5), 5, 30), key=lambda c: c.score)
    assert (unlimited.start, unlimited.end, unlimited.score) == (0, 19, 10.0)
    spans = window_candidates(starts, ends, 2, OFFSETS, (0, 5), n_best=5, max_answer=2)
    best = max(spans, key=lambda c: c.score)
    assert (best.start, best.end, best.score) == (0, 7, 6.0)  # two tokens at most
    assert all(c.end - c.start <= 7 for c in spans)
    assert len(window_candidates(starts, ends, 2, OFFSETS, (0, 5), n_best=1, max_answer=30)) == 1


def test_a_window_that_owns_nothing_proposes_nothing():
    assert window_candidates(logits({}), logits({}), 2, OFFSETS, (0, 0), 5, 30) == []
    assert window_candidates(logits({}), logits({}), 2, [], (0, 0), 5, 30) == []


class FakeOutputs:
    def __init__(self, starts: list[np.ndarray], ends: list[np.ndarray]):
        self.start_logits = torch.tensor(np.stack(starts))
        self.end_logits = torch.tensor(np.stack(ends))


def batch(windows: list[tuple[int, tuple[int, int]]]) -> dict:
    """Two windows over CONTEXT, both with all five tokens at positions 2..6."""
    return {
        "record": [r for r, _ in windows],
        "context_begin": [2] * len(windows),
        "offsets": [OFFSETS] * len(windows),
        "owned": [owned for _, owned in windows],
    }


def decode(no_answer: bool, threshold: float, nulls: tuple[float, float]) -> list:
    decoder = SpanDecoder([CONTEXT], Counter({0: 2}), 20, 30, no_answer, threshold)
    # window 1 owns tokens 0-2 and likes "bbb" (score 3 + 3); window 2 owns 3-4 and likes "ddd" (2 + 2)
    first = (logits({0: nulls[0], 3: 3.0}), logits({0: 0.0, 3: 3.0}))
    second = (logits({0: nulls[1], 5: 2.0}), logits({0: 0.0, 5: 2.0}))
    decoder.add(FakeOutputs([first[0]], [first[1]]), batch([(0, (0, 3))]))
    decoder.add(FakeOutputs([second[0]], [second[1]]), batch([(0, (3, 5))]))
    return decoder.predictions()


def test_the_best_span_over_windows_wins():
    [prediction] = decode(no_answer=False, threshold=0.0, nulls=(100.0, 100.0))
    assert (prediction.text, prediction.start, prediction.end, prediction.score) == ("bbb", 4, 7, 6.0)


def test_no_answer_when_the_lowest_null_score_beats_the_best_span_by_more_than_the_threshold():
    # null scores 9 and 7.5 over the windows: the lowest, 7.5, is 1.5 above the best span (6)
    [prediction] = decode(no_answer=True, threshold=1.0, nulls=(9.0, 7.5))
    assert (prediction.text, prediction.start, prediction.best_text) == ("", None, "bbb")
    assert prediction.null_margin == 1.5
    [prediction] = decode(no_answer=True, threshold=2.0, nulls=(9.0, 7.5))
    assert prediction.text == "bbb"
    [prediction] = decode(no_answer=False, threshold=-100.0, nulls=(9.0, 7.5))
    assert prediction.text == "bbb"  # a model without no-answer questions always answers


def test_a_question_without_windows_or_spans_gets_the_empty_answer():
    decoder = SpanDecoder(["", "x"], Counter({1: 1}), 20, 30, False, 0.0)
    decoder.add(FakeOutputs([logits({})], [logits({})]), {**batch([(1, (0, 0))]), "offsets": [[]]})
    first, second = decoder.predictions()
    assert first.text == second.text == "" and math.isinf(second.null_margin)
