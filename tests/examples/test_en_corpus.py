"""Tests for examples/en_corpus.py: the modern-English corpus of the recipe's second pretraining phase,
read back the way `bertkit pretrain --documents blank` reads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bertkit.pretrain.corpus import CorpusOptions, CorpusStats, read_documents

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "en_corpus.py"


def load_script():
    spec = importlib.util.spec_from_file_location("en_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_like(root: Path) -> Path:
    """The three source folders in their published formats, in miniature."""
    (root / "wikitext2").mkdir(parents=True)
    (root / "wikitext2" / "valid.txt").write_text(
        " \n = Homarus = \n \n Homarus is a <unk> lobster . It grows to 0 @.@ 7 kg . \n \n"
        " = = Description = = \n \n It is blue @-@ black . \n \n = Second Article = \n \n Text two . \n",
        encoding="utf-8",
    )
    (root / "wikitext2" / "test.txt").write_text(" \n = Third = \n \n Three . \n", encoding="utf-8")
    (root / "glue_sst2").mkdir()
    rows = ["a gorgeous film\t1", "dull\t0", "a gorgeous film\t1"] + [
        f"phrase {k}\t{k % 2}" for k in range(16)
    ]
    train = "sentence\tlabel\n" + "\n".join(rows) + "\n"
    (root / "glue_sst2" / "train.tsv").write_text(train, encoding="utf-8")
    (root / "glue_sst2" / "dev.tsv").write_text("sentence\tlabel\nDEV SENTENCE\t1\n", encoding="utf-8")
    (root / "wnut17").mkdir()
    tweets = "@paul\tO\nsays\tO\nhi\tO\n\t\nNew\tB-location\n"
    (root / "wnut17" / "wnut17train.conll").write_text(tweets, encoding="utf-8")
    (root / "wnut17" / "emerging.dev.conll").write_text("dev\tO\ntweet\tO\n", encoding="utf-8")
    (root / "wnut17" / "emerging.test.annotated").write_text("TEST\tO\n", encoding="utf-8")
    return root


def test_wikitext_articles_are_documents_without_headings_or_placeholders(tmp_path):
    docs = load_script().wikitext(shared_like(tmp_path / "data"))
    first = "Homarus is a lobster . It grows to 0.7 kg .\nIt is blue-black ."
    assert docs == [first, "Text two .", "Three ."]


def test_corpus_keeps_train_text_only_and_reads_back_as_blank_line_documents(tmp_path, monkeypatch):
    data, out = shared_like(tmp_path / "data"), tmp_path / "corpus"
    monkeypatch.setattr("sys.argv", ["en_corpus.py", str(data), str(out)])
    load_script().main()
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(out.glob("*.txt")))
    assert "DEV SENTENCE" not in text and "TEST" not in text  # no dev or test text is pretrained on
    assert text.count("a gorgeous film") == 1  # deduplicated
    blank = CorpusOptions(documents="blank")
    docs = list(read_documents([out / "sst2_train_sentences.txt"], blank, CorpusStats()))
    assert len(docs) == 2  # 18 distinct sentences, 16 a document
    docs = list(read_documents([out / "wnut17_train_dev_tweets.txt"], blank, CorpusStats()))
    # a document's lines are unwrapped as one paragraph: MLM packs them into one block anyway
    assert [d.sentences for d in docs] == [["@paul says hi New dev tweet"]]
