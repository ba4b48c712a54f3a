"""From window logits back to one tag per word, streaming and within the tag scheme's rules.

Scores are kept only for sentences that still have windows to come, so evaluating a large file holds
predictions, not the logits of the whole set. Viterbi decoding forbids the transitions the scheme
does not allow (an I-X after O in IOB2, a B-X not closed in BIOES), which per-word argmax produces
and strict entity scoring then throws away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bertkit.data.tagschemes import split_tag
from bertkit.tasks.base import WindowDecoder


@dataclass
class WordTags:
    """The prediction for one sentence: a tag per word and the model's probability of that tag."""

    tags: list[str]
    probs: list[float]


class TagDecoder(WindowDecoder):
    """Per-word log-probabilities from the windows that own each word, then one tag path per sentence."""

    def __init__(
        self, labels: list[str], scheme: str, method: str, word_counts: list[int], windows_per_record: Counter
    ):
        self.labels = labels
        self.method = method
        self.allowed = allowed_transitions(labels, scheme)
        self.word_counts = word_counts
        self.scores: dict[int, np.ndarray] = {}
        super().__init__(windows_per_record, len(word_counts))

    def window_outputs(self, outputs: Any, batch: dict) -> list[list[tuple[int, np.ndarray]]]:
        """For each window: (word index, log-probabilities) of every word it owns."""
        log_probs = torch.log_softmax(outputs.logits.float(), dim=-1)
        rows = [b for b, slots in enumerate(batch["slots"]) for _ in slots]
        cols = [pos for slots in batch["slots"] for pos, _ in slots]
        # one gather for the whole batch: indexing per word would cost a kernel call each
        picked = log_probs[rows, cols].cpu().numpy() if rows else np.zeros((0, len(self.labels)))
        out, k = [], 0
        for slots in batch["slots"]:
            out.append([(word, picked[k + i]) for i, (_, word) in enumerate(slots)])
            k += len(slots)
        return out

    def collect(self, record: int, payload: list[tuple[int, np.ndarray]]) -> None:
        if payload and record not in self.scores:
            self.scores[record] = np.zeros((self.word_counts[record], len(self.labels)), np.float32)
        for word, row in payload:
            self.scores[record][word] = row

    def finish(self, record: int) -> WordTags:
        scores = self.scores.pop(record, np.zeros((0, len(self.labels)), np.float32))
        path = viterbi(scores, *self.allowed) if self.method == "viterbi" else scores.argmax(-1)
        probs = np.exp(scores[np.arange(len(path)), path]) if len(path) else np.zeros(0)
        return WordTags([self.labels[i] for i in path], probs.tolist())

    def empty(self, record: int) -> WordTags:
        return WordTags([], [])


def can_follow(prev: str, cur: str, scheme: str) -> bool:
    """Whether tag ``cur`` may follow tag ``prev`` (use "O" as ``prev`` for a sentence start)."""
    prev_prefix, prev_type = split_tag(prev)
    cur_prefix, cur_type = split_tag(cur)
    if scheme == "iob2":
        return cur_prefix != "I" or (prev_prefix in ("B", "I") and prev_type == cur_type)
    if scheme in ("bioes", "bmes"):
        middle = "M" if scheme == "bmes" else "I"
        if prev_prefix in ("B", middle):
            return cur_prefix in (middle, "E") and cur_type == prev_type
        return cur_prefix not in (middle, "E")
    return True  # io and iob1 allow every sequence


def allowed_transitions(labels: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (start, transition, end) of what the scheme allows, as 0 / -inf additive scores."""
    n = len(labels)
    blocked = np.float32(-np.inf)
    start = np.array([0.0 if can_follow("O", t, scheme) else blocked for t in labels], np.float32)
    trans = np.array(
        [[0.0 if can_follow(a, b, scheme) else blocked for b in labels] for a in labels], np.float32
    ).reshape(n, n)
    # a B-X or I-X may not end a sentence in BIOES/BMES: the entity would never be closed
    end = np.array([0.0 if can_follow(t, "O", scheme) else blocked for t in labels], np.float32)
    return start, trans, end


def viterbi(scores: np.ndarray, start: np.ndarray, trans: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The highest-scoring tag path with only allowed transitions; argmax if none is allowed."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    best = scores[0] + start
    back = np.zeros((n, scores.shape[1]), dtype=np.int64)
    for i in range(1, n):
        candidates = best[:, None] + trans  # [previous tag, current tag]
        back[i] = candidates.argmax(0)
        best = candidates.max(0) + scores[i]
    best = best + end
    if not np.isfinite(best.max()):
        return scores.argmax(-1)
    path = [int(best.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i][path[-1]]))
    return np.array(path[::-1], dtype=np.int64)
