"""Tests for store.py: the token store reads back what was written, streams, is reused by fingerprint,
is rebuilt when stale or damaged, and survives a killed build."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bertkit.errors import BertkitError
from bertkit.pretrain import store as store_module
from bertkit.pretrain.store import CorruptStore, open_or_build_store, verify_store


def random_corpus(
    seed: int, n_documents: int = 30, high: int = 30_000
) -> list[list[tuple[list[int], list[bool]]]]:
    rng = np.random.default_rng(seed)
    corpus = []
    for _ in range(n_documents):
        document = []
        for _ in range(int(rng.integers(1, 6))):
            n = int(rng.integers(1, 12))
            document.append((rng.integers(5, high, n).tolist(), (rng.random(n) < 0.6).tolist()))
        corpus.append(document)
    return corpus


def never_called():
    raise AssertionError("documents() was called: the store should have been reused")


def build(folder: Path, corpus, fingerprint: str = "fp-1", **kwargs):
    return open_or_build_store(folder, fingerprint, lambda: iter(corpus), progress=False, **kwargs)


def test_reads_back_every_document_and_sentence(tmp_path):
    corpus = random_corpus(0)
    corpus[3] = []  # an empty document
    corpus[5].insert(1, ([], []))  # an empty sentence
    corpus[7] = [([], []), ([], [])]  # a document of empty sentences only
    store = build(tmp_path / "store", corpus)
    kept = [[s for s in doc if s[0]] for doc in corpus]
    kept = [doc for doc in kept if doc]
    assert store.n_documents == len(kept) == len(corpus) - 2
    assert store.n_sentences == sum(len(doc) for doc in kept)
    assert store.tokens.dtype == np.uint16 and store.word_starts.dtype == np.uint8
    for d, document in enumerate(kept):
        sentences = store.sentences_of(d)
        assert len(sentences) == len(document)
        for s, (ids, starts) in zip(sentences, document):
            begin, end = store.sentence_span(s)
            assert store.tokens[begin:end].tolist() == ids
            assert store.word_starts[begin:end].astype(bool).tolist() == starts
            assert store.document_of_token(begin) == d
        assert store.document_span(d) == (
            store.sentence_span(sentences[0])[0],
            store.sentence_span(sentences[-1])[1],
        )
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert (meta["skipped_documents"], meta["skipped_sentences"]) == (2, 3)
    with pytest.raises(IndexError):
        store.sentences_of(store.n_documents)


def test_ids_beyond_uint16_widen_the_written_part_to_int32(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "FLUSH_SENTENCES", 3)  # several flushes before the large id comes
    corpus = random_corpus(1, n_documents=20)
    corpus[-1] = [([70_000, 5, 65_535], [True, False, True])]
    store = build(tmp_path / "store", corpus)
    assert store.tokens.dtype == np.int32
    flat = [t for doc in corpus for ids, _ in doc for t in ids]
    assert store.tokens.tolist() == flat
    verify_store(tmp_path / "store")  # the digest was recomputed over the widened file


def test_writes_while_reading_the_documents(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "FLUSH_SENTENCES", 10)
    sizes = []

    def documents():
        for i, document in enumerate(random_corpus(2, n_documents=60)):
            if i == 50:
                [scratch] = tmp_path.glob(".store.*.building")
                sizes.append((scratch / "tokens.bin").stat().st_size)
            yield document

    open_or_build_store(tmp_path / "store", "fp", documents, progress=False)
    assert sizes and sizes[0] > 0


def test_reuses_a_store_with_the_same_fingerprint(tmp_path, caplog):
    store = build(tmp_path / "store", random_corpus(3))
    with caplog.at_level(logging.INFO, logger="bertkit.pretrain.store"):
        again = open_or_build_store(tmp_path / "store", "fp-1", never_called, progress=False, verify=True)
    assert "reusing" in caplog.text
    assert again.tokens.tolist() == store.tokens.tolist()


def test_rebuilds_a_store_of_another_fingerprint(tmp_path, caplog):
    build(tmp_path / "store", random_corpus(4), "fp-old")
    with caplog.at_level(logging.INFO, logger="bertkit.pretrain.store"):
        store = build(tmp_path / "store", random_corpus(5), "fp-new")
    assert "fp-old, not fp-new: rebuilding" in caplog.text
    assert store.fingerprint == "fp-new"
    assert store.tokens.tolist() == [t for doc in random_corpus(5) for ids, _ in doc for t in ids]


@pytest.mark.parametrize(
    "damage, named",
    [
        (
            lambda f: f.joinpath("tokens.bin").write_bytes(f.joinpath("tokens.bin").read_bytes()[:-2]),
            "tokens.bin",
        ),
        (lambda f: f.joinpath("sentence_ends.bin").unlink(), "sentence_ends.bin: missing"),
        (lambda f: f.joinpath("meta.json").write_text("{not json"), "meta.json: unreadable"),
        (lambda f: f.joinpath("meta.json").unlink(), "meta.json: missing"),
    ],
    ids=["truncated array", "missing array", "garbage meta", "missing meta"],
)
def test_detects_a_damaged_store_and_rebuilds_it(tmp_path, caplog, damage, named):
    corpus = random_corpus(6)
    build(tmp_path / "store", corpus)
    damage(tmp_path / "store")
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.store"):
        store = build(tmp_path / "store", corpus)
    assert "damaged" in caplog.text and named in caplog.text
    verify_store(tmp_path / "store")
    assert store.n_tokens == sum(len(ids) for doc in corpus for ids, _ in doc)


def test_counts_that_disagree_with_the_arrays_are_damage(tmp_path):
    build(tmp_path / "store", random_corpus(7))
    meta_path = tmp_path / "store" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["n_tokens"] -= 1
    meta["arrays"]["tokens"]["length"] -= 1
    meta["arrays"]["word_starts"]["length"] -= 1
    meta_path.write_text(json.dumps(meta))
    # sizes match the changed meta once the files are cut, but the sentence offsets then run past the end
    for name, itemsize in (("tokens", 2), ("word_starts", 1)):
        path = tmp_path / "store" / f"{name}.bin"
        path.write_bytes(path.read_bytes()[:-itemsize])
    with pytest.raises(CorruptStore, match="sentence_ends.bin: ends at token"):
        verify_store(tmp_path / "store")


def test_a_changed_byte_is_found_by_the_hash_check_only(tmp_path, caplog):
    build(tmp_path / "store", random_corpus(8))
    path = tmp_path / "store" / "word_starts.bin"
    data = bytearray(path.read_bytes())
    data[3] ^= 1
    path.write_bytes(bytes(data))
    open_or_build_store(tmp_path / "store", "fp-1", never_called, progress=False)  # sizes still agree
    with pytest.raises(CorruptStore, match="word_starts.bin: content differs"):
        verify_store(tmp_path / "store")
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.store"):
        build(tmp_path / "store", random_corpus(8), verify=True)
    assert "word_starts.bin: content differs" in caplog.text
    verify_store(tmp_path / "store")


KILLED_BUILD = """
import os, signal, sys
from bertkit.pretrain import store

def documents():
    for i in range(1000):
        if i == 500:
            os.kill(os.getpid(), signal.SIGKILL)
        yield [([5, 6, 7], [True, False, True])]

store.FLUSH_SENTENCES = 100
store.open_or_build_store(sys.argv[1], "fp-2", documents, progress=False)
"""


def test_a_killed_build_leaves_the_old_store_and_its_scratch_is_removed_later(tmp_path, caplog):
    corpus = random_corpus(9)
    build(tmp_path / "store", corpus, "fp-1")
    script = textwrap.dedent(KILLED_BUILD)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "store")], env={**os.environ})
    assert done.returncode == -signal.SIGKILL
    [orphan] = tmp_path.glob(".store.*.building")
    assert (orphan / "tokens.bin").stat().st_size > 0  # it was killed mid-write
    old = open_or_build_store(tmp_path / "store", "fp-1", never_called, progress=False, verify=True)
    assert old.n_documents == len(corpus)
    with caplog.at_level(logging.INFO, logger="bertkit.pretrain.store"):
        build(tmp_path / "store", corpus, "fp-2")
    assert "left behind by a killed build" in caplog.text
    assert list(tmp_path.glob(".store.*")) == []


def test_a_kill_between_the_renames_gets_the_old_store_back(tmp_path):
    build(tmp_path / "store", random_corpus(10))
    (tmp_path / "store").rename(tmp_path / ".store.old")
    store = open_or_build_store(tmp_path / "store", "fp-1", never_called, progress=False)
    assert store.n_documents == 30 and not (tmp_path / ".store.old").exists()


def test_a_live_build_is_left_alone(tmp_path):
    scratch = tmp_path / ".store.abc.building"
    scratch.mkdir()
    (scratch / "OWNER").write_text(
        json.dumps({"host": store_module.socket.gethostname(), "pid": os.getppid()})
    )
    build(tmp_path / "store", random_corpus(11))
    assert scratch.exists()


def test_bad_corpora_are_refused(tmp_path):
    with pytest.raises(BertkitError, match="no tokens: 2 documents read"):
        build(tmp_path / "a", [[([], [])], []])
    with pytest.raises(BertkitError, match="document 1, sentence 0: 2 token ids but 1 word starts"):
        build(tmp_path / "b", [[([1], [True])], [([1, 2], [True])]])
    with pytest.raises(BertkitError, match="token id -3"):
        build(tmp_path / "c", [[([1, -3], [True, True])]])
    assert not list(tmp_path.glob(".*"))  # failed builds leave no scratch behind


def test_refuses_to_replace_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(BertkitError, match="refusing to replace it"):
        build(tmp_path / "notes", random_corpus(12))
    assert (tmp_path / "notes" / "todo.txt").exists()


def test_progress_bar_only_when_asked(tmp_path, capsys):
    open_or_build_store(tmp_path / "a", "fp", lambda: random_corpus(13), progress=True)
    assert "token store" in capsys.readouterr().err
    open_or_build_store(tmp_path / "b", "fp", lambda: random_corpus(13), progress=False)
    assert capsys.readouterr().err == ""
