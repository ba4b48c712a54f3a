"""How well the words that Chinese whole-word masking uses (``--word-boundaries jieba``) match the gold
segmentation of People's Daily 1998.

Scored as word segmentation is (SIGHAN bakeoff): a word is right when its start and end both match a
gold word; word-start F1 counts only where words begin, which is what decides the masking groups. Both
with and without jieba's HMM (which guesses words missing from its dictionary); bertkit uses it off.
Spaces and punctuation are words on both sides, as the masking sees them.

    python benchmarks/jieba_vs_gold.py [--data ../shared/data] [--lines N]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from bertkit.pretrain.words import jieba_spans

TAG = re.compile(r"/[A-Za-z]+$")


def gold_sentences(path: Path, limit: int | None) -> list[list[str]]:
    """The gold words of each line of ``199801.txt`` (``word/TAG`` tokens), tags stripped."""
    sentences = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        tokens = [TAG.sub("", token) for token in line.split()]
        if tokens:
            sentences.append(tokens)
    return sentences[:limit]


def spans_of(words_: list[str]) -> list[tuple[int, int]]:
    spans, at = [], 0
    for word in words_:
        spans.append((at, at + len(word)))
        at += len(word)
    return spans


def f1(right: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision, recall = right / max(predicted, 1), right / max(gold, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def score(sentences: list[list[str]], hmm: bool) -> dict[str, float]:
    """Word and word-start precision, recall and F1 of bertkit's jieba words against gold."""
    right = predicted = gold_count = starts_right = starts_predicted = starts_gold = 0
    began = time.perf_counter()
    for sentence in sentences:
        gold = set(spans_of(sentence))
        found = set(jieba_spans("".join(sentence), hmm=hmm))
        right, predicted, gold_count = (
            right + len(gold & found),
            predicted + len(found),
            gold_count + len(gold),
        )
        gold_starts, found_starts = {s for s, _ in gold}, {s for s, _ in found}
        starts_right += len(gold_starts & found_starts)
        starts_predicted, starts_gold = starts_predicted + len(found_starts), starts_gold + len(gold_starts)
    seconds = time.perf_counter() - began
    p, r, f = f1(right, predicted, gold_count)
    sp, sr, sf = f1(starts_right, starts_predicted, starts_gold)
    return {
        "word_p": p,
        "word_r": r,
        "word_f1": f,
        "start_p": sp,
        "start_r": sr,
        "start_f1": sf,
        "s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--lines", type=int, default=None, help="score the first N lines only")
    args = parser.parse_args()
    sentences = gold_sentences(args.data / "zh_peoples_daily_1998" / "199801.txt", args.lines)
    n_words = sum(len(s) for s in sentences)
    print(f"People's Daily 1998: {len(sentences):,} lines, {n_words:,} gold words")
    header = ("word P", "word R", "word F1", "start P", "start R", "start F1")
    print(f"{'jieba':<10} " + " ".join(f"{h:>8}" for h in header))
    for hmm in (False, True):
        s = score(sentences, hmm)
        name = "HMM on" if hmm else "HMM off"
        print(
            f"{name:<10} "
            + " ".join(
                f"{s[k]:8.3f}" for k in ("word_p", "word_r", "word_f1", "start_p", "start_r", "start_f1")
            )
            + f"   ({s['s']:.0f} s)"
        )


if __name__ == "__main__":
    main()
