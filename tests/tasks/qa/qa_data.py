"""Data of the QA tests: a tiny random BERT whose vocabulary has the synthetic words and some Chinese
characters, and the synthetic task "the answer is the word after the marker"."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from conftest import make_tiny_bert

FILLER = ["the", "a", "went", "to", "saw", "met", "in", "and", "with", "today", "then", "home", "big", "old"]
ANSWERS = ["alice", "bob", "carol", "dave", "erin", "frank", "paris", "berlin", "tokyo", "lima"]
MARKER = "key"
QUESTION = "what is after key ?"
CHINESE = list("北京是中国的首都上海在东方城市大学他们有一个很多人")
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *FILLER,
    *ANSWERS,
    MARKER,
    "what",
    "is",
    "after",
    "?",
    ".",
    ",",
    "-",
    "'",
    "é",
    *CHINESE,
    *"abcdefghijklmnopqrstuvwxyz0123456789",
    *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"],
]


def make_qa_bert(out: Path, hidden: int = 64, layers: int = 2, positions: int = 128) -> Path:
    # all positions drawn at once: the same weights as before this used conftest's builder
    return make_tiny_bert(out, layers, hidden, positions, vocab=VOCAB, heads=4, drawn_positions=positions)


def marker_question(rng: random.Random, qid: str, length: int | None = None) -> dict[str, Any]:
    """A context of filler and answer-like words with ``key`` somewhere, followed by the answer word:
    only the marker tells the answer from the other answer-like words."""
    n = length or rng.randint(5, 12)
    words = [rng.choice(ANSWERS if rng.random() < 0.4 else FILLER) for _ in range(n)]
    at = rng.randrange(len(words))
    answer = rng.choice(ANSWERS)
    words[at : at + 1] = [MARKER, answer]
    context = " ".join(words)
    start = len(" ".join(words[: at + 1])) + 1
    assert context[start : start + len(answer)] == answer
    return {
        "id": qid,
        "question": QUESTION,
        "context": context,
        "answers": [{"text": answer, "answer_start": start}],
    }


def write_squad(path: Path, questions: list[dict[str, Any]], version: str = "1.1") -> Path:
    """Questions as a SQuAD JSON file, one paragraph per question, ten paragraphs per article."""
    articles = []
    for begin in range(0, len(questions), 10):
        paragraphs = [
            {"context": q["context"], "qas": [{k: v for k, v in q.items() if k != "context"}]}
            for q in questions[begin : begin + 10]
        ]
        articles.append({"title": f"article {begin // 10}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": version, "data": articles}, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, questions: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    return path
