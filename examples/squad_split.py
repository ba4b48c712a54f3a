"""Split a SQuAD file by article into train.json and dev.json (no article in both).

    python examples/squad_split.py DEV_JSON OUT_DIR --dev-articles N [--seed S]

SQuAD v1.1 ships its test set unpublished, so a quality run on the public dev file alone trains on some
of its articles and evaluates on the others. Articles, not questions, are split: questions about one
paragraph resemble each other, and a split by question would score memory, not reading. The N dev
articles are a seeded random choice; both files keep the input's format and version.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path


def split_articles(document: dict, dev_articles: int, seed: int) -> tuple[dict, dict]:
    articles = document["data"]
    if not 0 < dev_articles < len(articles):
        raise SystemExit(f"--dev-articles must be between 1 and {len(articles) - 1}, got {dev_articles}")
    chosen = set(random.Random(seed).sample(range(len(articles)), dev_articles))
    train = [a for i, a in enumerate(articles) if i not in chosen]
    dev = [a for i, a in enumerate(articles) if i in chosen]
    version = document.get("version")
    return {"version": version, "data": train}, {"version": version, "data": dev}


def questions(document: dict) -> int:
    return sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="DEV_JSON", help="a SQuAD v1.1/v2.0 JSON file")
    parser.add_argument("out", metavar="OUT_DIR", help="where train.json and dev.json are written")
    parser.add_argument(
        "--dev-articles", type=int, required=True, metavar="N", help="articles held out as dev"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of dev articles")
    args = parser.parse_args(argv)
    document = json.loads(Path(args.source).read_text(encoding="utf-8"))
    train, dev = split_articles(document, args.dev_articles, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("dev", dev)):
        (out / f"{name}.json").write_text(json.dumps(part, ensure_ascii=False), encoding="utf-8")
        print(f"{out / name}.json: {len(part['data'])} articles, {questions(part)} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
