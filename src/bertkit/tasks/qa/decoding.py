"""From window start/end logits to one answer per question, as a character span of its context.

Each window proposes the n best start positions among the context tokens it owns (the max-context
rule of google-research/bert: a token is judged in the window where it has the most context on its
closer side) and the n best end positions, paired into spans no longer than the maximum answer length.
A question's answer is its best span over all windows; with no-answer questions (SQuAD v2.0) it is
"" when the no-answer score (the [CLS] position's, lowest over the windows) beats that span's score by
more than the threshold. Spans are read off the tokenizer's character offsets, so the answer is the
exact text of the context, whatever its unicode, spacing or script.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertkit.tasks.base import Batch, WindowDecoder

NULL_POSITION = 0  # where the template puts [CLS] (<s>): its start+end score is the no-answer score


@dataclass(frozen=True)
class SpanCandidate:
    score: float  # start logit + end logit
    start: int  # character offsets in the context, end exclusive
    end: int


@dataclass
class QaPrediction:
    """The answer to one question.

    ``text`` is the answer given ("" for no answer) and ``start``/``end`` its character offsets in the
    context (None for no answer). ``best_text``/``score`` are the best span's, given or not;
    ``null_margin`` is how far the no-answer score beats it (inf when the context has no span), which
    a no-answer threshold is tuned on.
    """

    text: str
    start: int | None
    end: int | None
    score: float
    null_margin: float
    best_text: str


def window_candidates(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_begin: int,
    offsets: Sequence[tuple[int, int]],
    owned: tuple[int, int],
    n_best: int,
    max_answer: int,
) -> list[SpanCandidate]:
    """The spans one window proposes: starts among the tokens it owns, ends anywhere in its context.

    ``offsets`` are the character offsets of the window's context tokens, the first at position
    ``context_begin``; ``owned`` is the [first, last) range of them (window-local) that this window
    owns; a span is at most ``max_answer`` tokens long.
    """
    lo, hi = owned
    n = len(offsets)
    if hi <= lo or n == 0:
        return []
    starts_logits = start_logits[context_begin : context_begin + n]
    ends_logits = end_logits[context_begin : context_begin + n]
    starts = lo + np.argsort(-starts_logits[lo:hi], kind="stable")[:n_best]
    ends = np.argsort(-ends_logits, kind="stable")[:n_best]
    out = []
    for i in starts.tolist():
        for j in ends.tolist():
            if i <= j < i + max_answer:
                score = float(starts_logits[i] + ends_logits[j])
                out.append(SpanCandidate(score, offsets[i][0], offsets[j][1]))
    return out


class SpanDecoder(WindowDecoder):
    """Keeps each question's n best spans and lowest no-answer score until its last window is seen."""

    def __init__(
        self,
        contexts: Sequence[str],
        windows_per_record: Counter,
        n_best: int,
        max_answer: int,
        no_answer: bool,
        null_threshold: float,
    ):
        self.contexts = contexts
        self.n_best, self.max_answer = n_best, max_answer
        self.no_answer, self.null_threshold = no_answer, null_threshold
        self.spans: dict[int, list[SpanCandidate]] = {}
        self.null: dict[int, float] = {}
        super().__init__(windows_per_record, len(contexts))

    def window_outputs(self, outputs: Any, batch: Batch) -> list[tuple[list[SpanCandidate], float]]:
        starts = outputs.start_logits.float().cpu().numpy()
        ends = outputs.end_logits.float().cpu().numpy()
        out = []
        for row, (begin, offsets, owned) in enumerate(
            zip(batch["context_begin"], batch["offsets"], batch["owned"])
        ):
            spans = window_candidates(
                starts[row], ends[row], begin, offsets, owned, self.n_best, self.max_answer
            )
            out.append((spans, float(starts[row, NULL_POSITION] + ends[row, NULL_POSITION])))
        return out

    def collect(self, record: int, payload: tuple[list[SpanCandidate], float]) -> None:
        spans, null = payload
        kept = self.spans.get(record, []) + spans
        self.spans[record] = heapq.nlargest(self.n_best, kept, key=lambda c: c.score)
        self.null[record] = min(self.null.get(record, math.inf), null)

    def finish(self, record: int) -> QaPrediction:
        spans = self.spans.pop(record, [])
        null = self.null.pop(record, math.inf)
        if not spans:
            return QaPrediction("", None, None, -math.inf, math.inf, "")
        best = spans[0]
        text = self.contexts[record][best.start : best.end]
        margin = null - best.score
        if self.no_answer and margin > self.null_threshold:
            return QaPrediction("", None, None, best.score, margin, text)
        return QaPrediction(text, best.start, best.end, best.score, margin, text)

    def empty(self, record: int) -> QaPrediction:
        return QaPrediction("", None, None, -math.inf, math.inf, "")
