"""Gather the modern English text of the shared data folder into one pretraining corpus folder.

The Gutenberg books are 19th-century prose; the fine-tuning sets are film reviews (SST-2) and tweets
(WNUT-17). This corpus is the text nearer to them, for a second, continued pretraining phase
(Gururangan et al., 2020: domain- and task-adaptive pretraining):

- WikiText-2 (validation and test: its train split is not in the folder), an article a document,
  headings and the `<unk>` placeholders dropped, `@-@`-style escapes undone;
- the sentences of SST-2's train split without their labels (dev and test left out), deduplicated,
  16 a document (they come shuffled, so a document is only a bag of sentences: use `--objective mlm`);
- the tweets of WNUT-17's train and dev splits without their tags (test left out), 8 a document.

Documents are separated by blank lines, so `bertkit pretrain --documents blank` reads them.

    python examples/en_corpus.py ../shared/data runs/en-corpus
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

ARTICLE = re.compile(r"^ = [^=].* = $")
HEADING = re.compile(r"^ ?=( =)* .* =( =)* ?$")
ESCAPE = re.compile(r" @(.)@ ")


def wikitext(data: Path) -> list[str]:
    docs: list[list[str]] = []
    for name in ("valid.txt", "test.txt"):
        for line in (data / "wikitext2" / name).read_text(encoding="utf-8").splitlines():
            if ARTICLE.match(line):
                docs.append([])
            elif line.strip() and not HEADING.match(line) and docs:
                text = ESCAPE.sub(r"\1", line.replace(" <unk>", "").replace("<unk> ", "")).strip()
                docs[-1].append(text)
    return ["\n".join(doc) for doc in docs if doc]


def sst2_sentences(data: Path) -> list[str]:
    lines = (data / "glue_sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return list(dict.fromkeys(line.rsplit("\t", 1)[0].strip() for line in lines if line.strip()))


def conll_sentences(paths: Iterable[Path]) -> list[str]:
    sentences, words = [], []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines() + [""]:
            if line.strip():
                words.append(line.split("\t")[0].strip())
            elif words:
                sentences.append(" ".join(words))
                words = []
    return sentences


def grouped(lines: list[str], size: int) -> list[str]:
    return ["\n".join(lines[k : k + size]) for k in range(0, len(lines), size)]


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    wnut = conll_sentences(data / "wnut17" / name for name in ("wnut17train.conll", "emerging.dev.conll"))
    for name, docs in (
        ("wikitext2.txt", wikitext(data)),
        ("sst2_train_sentences.txt", grouped(sst2_sentences(data), 16)),
        ("wnut17_train_dev_tweets.txt", grouped(wnut, 8)),
    ):
        (out / name).write_text("\n\n".join(docs) + "\n", encoding="utf-8")
        print(f"{out / name}: {len(docs)} documents")


if __name__ == "__main__":
    main()
