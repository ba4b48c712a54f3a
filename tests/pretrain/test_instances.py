"""Tests for instances.py: NSP pairs follow Google's recipe (labels, segments, truncation, short targets),
mlm blocks cover every token once, the traps of too few documents or sentences are caught, the held-out
split is clean, and built offsets are reused by fingerprint."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bertkit.data.batching import epoch_batches
from bertkit.errors import BertkitError
from bertkit.pretrain import instances as instances_module
from bertkit.pretrain.instances import (
    IS_NEXT,
    RANDOM_NEXT,
    Instances,
    SpecialIds,
    build_instances,
    split_documents,
    truncation_cuts,
)
from bertkit.pretrain.store import TokenStore, open_or_build_store

SPECIAL = SpecialIds(cls=2, sep=3)  # real token ids start at 100, so specials are easy to tell apart


def make_store(folder, sentence_lengths: list[list[int]], seed: int = 0) -> TokenStore:
    """A store whose documents have the given sentence lengths; token ids 100.. and random word starts."""
    rng = np.random.default_rng(seed)

    def documents():
        for document in sentence_lengths:
            yield [(rng.integers(100, 30_000, n).tolist(), (rng.random(n) < 0.7).tolist()) for n in document]

    return open_or_build_store(folder, f"synthetic-{seed}", documents, progress=False)


@pytest.fixture(scope="module")
def many_documents(tmp_path_factory) -> TokenStore:
    """300 documents of 60-100 sentences of 4-20 tokens."""
    rng = np.random.default_rng(1)
    lengths = [rng.integers(4, 21, int(rng.integers(60, 101))).tolist() for _ in range(300)]
    return make_store(tmp_path_factory.mktemp("many") / "store", lengths)


def nsp(store: TokenStore, documents=None, **kwargs) -> Instances:
    documents = np.arange(store.n_documents) if documents is None else documents
    settings = {"objective": "mlm+nsp", "max_length": 64, "special": SPECIAL, **kwargs}
    return build_instances(store, documents, **settings)


def test_nsp_labels_are_balanced_and_right(many_documents):
    store = many_documents
    instances = nsp(store, short_seq_prob=0.0)
    rows = np.asarray(instances.rows)
    labels = rows[:, 4]
    assert len(rows) > 3000
    assert abs(np.mean(labels == IS_NEXT) - 0.5) < 0.03
    doc = {name: store.document_of_token(rows[:, k]) for k, name in enumerate(("a0", "a1", "b0", "b1"))}
    doc["a1"] = store.document_of_token(rows[:, 1] - 1)
    doc["b1"] = store.document_of_token(rows[:, 3] - 1)
    assert (doc["a0"] == doc["a1"]).all() and (doc["b0"] == doc["b1"]).all()  # each segment in one document
    real, random = labels == IS_NEXT, labels == RANDOM_NEXT
    assert (doc["b0"][real] == doc["a0"][real]).all()
    assert (rows[real, 2] >= rows[real, 1]).all()  # B after A (truncation may cut between them)
    assert (doc["b0"][random] != doc["a0"][random]).all()


def test_without_truncation_real_next_b_starts_where_a_ends(many_documents):
    rows = np.asarray(nsp(many_documents, max_length=100_000).rows)
    assert instances_module.IS_NEXT in rows[:, 4]
    real = rows[:, 4] == IS_NEXT
    assert (rows[real, 2] == rows[real, 1]).all()
    # A always starts on a sentence boundary when nothing is cut
    assert np.isin(rows[:, 0], np.concatenate([[0], many_documents.sentence_ends])).all()


def test_features_have_the_layout_bert_expects(many_documents):
    store = many_documents
    instances = nsp(store, duplicates=2, seed=3)
    assert instances.lengths.max() <= 64 and instances.lengths.dtype == np.int64
    for i in range(0, len(instances), 37):
        a0, a1, b0, b1, label = np.asarray(instances.rows[i]).tolist()
        f = instances[i]
        assert f.input_ids == [2, *store.tokens[a0:a1].tolist(), 3, *store.tokens[b0:b1].tolist(), 3]
        assert f.token_type_ids == [0] * (a1 - a0 + 2) + [1] * (b1 - b0 + 1)
        assert f.word_starts == [
            1,
            *store.word_starts[a0:a1].tolist(),
            1,
            *store.word_starts[b0:b1].tolist(),
            1,
        ]
        assert f.next_sentence_label == label and a1 > a0 and b1 > b0
        assert instances.lengths[i] == len(f.input_ids) <= 64
    assert len(instances[-1].input_ids) == instances.lengths[-1]
    with pytest.raises(IndexError):
        instances[len(instances)]
    # the loop draws batches from the lengths
    assert sorted(i for batch in epoch_batches(instances.lengths, 32, 0) for i in batch) == list(
        range(len(instances))
    )


def test_short_targets_come_at_short_seq_prob(tmp_path):
    # one-token sentences: the first real-next pair of a document has exactly the target's length
    store = make_store(tmp_path / "store", [[1] * 64 for _ in range(400)])
    instances = nsp(store, max_length=35, short_seq_prob=0.1, duplicates=5)
    rows = np.asarray(instances.rows)
    document = store.document_of_token(rows[:, 0])
    first = np.concatenate([[True], document[1:] != document[:-1]])
    first_real = first & (rows[:, 4] == IS_NEXT)
    assert first_real.sum() > 700
    short = np.mean(instances.lengths[first_real] < 35)
    assert abs(short - 0.1 * 30 / 31) < 0.04  # a drawn target of 32 is not short
    assert abs(instances.stats.short_targets / instances.stats.targets - 0.1) < 0.03
    assert instances.stats.targets == 400 * 5


def test_truncation_cuts_as_one_token_at_a_time_from_the_longer_side():
    for length_a in range(1, 14):
        for length_b in range(1, 14):
            for max_tokens in range(2, length_a + length_b):
                a, b = length_a, length_b
                while a + b > max_tokens:
                    if a >= b:
                        a -= 1
                    else:
                        b -= 1
                cuts = truncation_cuts(length_a, length_b, length_a + length_b - max_tokens)
                assert cuts == (length_a - a, length_b - b)


def test_truncated_tokens_are_counted_long_sentences_included(tmp_path, caplog):
    # some documents are one sentence of 300 tokens: A alone is far longer than the pair may be
    lengths = [[300] if d % 3 == 0 else [10, 12, 30, 8, 50] for d in range(60)]
    store = make_store(tmp_path / "store", lengths)
    with caplog.at_level(logging.INFO, logger="bertkit.pretrain.instances"):
        instances = nsp(store, duplicates=2)
    stats = instances.stats
    assert stats.truncated_tokens > 20 * 2 * (300 - 61)
    assert stats.pair_tokens - stats.truncated_tokens == int((instances.lengths - 3).sum())
    assert "cut by truncation" in caplog.text and "is the text split into sentences?" in caplog.text
    assert instances.lengths.max() <= 64
    # the cut tokens leave a long A at the front or the back with even odds
    rows = np.asarray(instances.rows)
    spans = np.array([store.document_span(d) for d in store.document_of_token(rows[:, 0]).tolist()])
    long = spans[:, 1] - spans[:, 0] == 300
    front, back = rows[long, 0] - spans[long, 0], spans[long, 1] - rows[long, 1]
    assert long.sum() == 40 and abs(front.sum() / (front.sum() + back.sum()) - 0.5) < 0.05


def test_one_document_cannot_make_random_next_pairs(tmp_path):
    store = make_store(tmp_path / "store", [[5, 6, 7, 8]])
    with pytest.raises(BertkitError, match="at least 2 documents.*--objective mlm"):
        nsp(store)
    assert len(build_instances(store, [0], objective="mlm", max_length=64, special=SPECIAL)) == 1
    store = make_store(tmp_path / "five", [[5, 6]] * 5)
    _, heldout = split_documents(5, 1, seed=0)
    with pytest.raises(BertkitError, match="a held-out split of one document"):
        nsp(store, heldout)


def test_one_sentence_documents_are_warned_about(tmp_path, caplog):
    lengths = [[12] if d % 20 else [12, 9, 14] for d in range(400)]
    store = make_store(tmp_path / "store", lengths)
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.instances"):
        instances = nsp(store)
    assert np.mean(np.asarray(instances.rows)[:, 4] == IS_NEXT) < 0.1
    assert "95.0% of the documents have one sentence" in caplog.text and "blank line" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.instances"):
        nsp(make_store(tmp_path / "fine", [[12, 9, 14, 8] * 5 for _ in range(100)]))
    assert "one sentence" not in caplog.text


def test_random_b_comes_only_from_the_given_documents(many_documents):
    train, heldout = split_documents(many_documents.n_documents, 0.2, seed=5)
    for documents in (train, heldout):
        rows = np.asarray(nsp(many_documents, documents).rows)
        assert set(many_documents.document_of_token(rows[:, 0]).tolist()) <= set(documents.tolist())
        assert set(many_documents.document_of_token(rows[:, 2]).tolist()) <= set(documents.tolist())


def test_mlm_blocks_cover_each_token_once_per_pass_within_a_document(tmp_path):
    rng = np.random.default_rng(2)
    lengths = [rng.integers(1, 30, int(rng.integers(1, 15))).tolist() for _ in range(80)]
    lengths[4] = [3, 150, 7]  # a sentence longer than a block
    lengths[9] = [62, 62, 1]  # sentences exactly a block long
    store = make_store(tmp_path / "store", lengths)
    documents = np.arange(0, 80, 2)
    instances = build_instances(
        store, documents, objective="mlm", max_length=64, special=SPECIAL, duplicates=2
    )
    rows = np.asarray(instances.rows)
    assert (rows[:, 2] == rows[:, 1]).all() and (rows[:, 4] == -100).all()
    assert (store.document_of_token(rows[:, 0]) == store.document_of_token(rows[:, 1] - 1)).all()
    covered = np.zeros(store.n_tokens + 1, dtype=np.int64)
    np.add.at(covered, rows[:, 0], 1)
    np.add.at(covered, rows[:, 1], -1)
    covered = np.cumsum(covered)[:-1]
    in_documents = np.isin(store.document_of_token(np.arange(store.n_tokens)), documents)
    assert (covered[in_documents] == 2).all() and (covered[~in_documents] == 0).all()
    assert instances.lengths.max() == 64  # the long sentence fills whole blocks
    f = instances[0]
    a0, a1 = rows[0, :2].tolist()
    assert f.input_ids == [2, *store.tokens[a0:a1].tolist(), 3] and f.token_type_ids == [0] * (a1 - a0 + 2)
    assert f.word_starts == [1, *store.word_starts[a0:a1].tolist(), 1] and f.next_sentence_label == -100
    # blocks are whole sentences, packed greedily: the next sentence would not have fitted
    starts = set(np.concatenate([[0], store.sentence_ends]).tolist())
    whole = [r for r in rows.tolist() if r[0] in starts and r[1] in starts]
    assert len(whole) > 0.9 * len(rows)


def test_deterministic_from_the_seed_and_fingerprinted_by_every_argument(many_documents):
    documents = np.arange(40)
    first = nsp(many_documents, documents, seed=1)
    assert np.array_equal(first.rows, nsp(many_documents, documents, seed=1).rows)
    assert first.fingerprint == nsp(many_documents, documents, seed=1).fingerprint
    assert not np.array_equal(first.rows, nsp(many_documents, documents, seed=2).rows)
    others = [
        nsp(many_documents, documents, seed=2),
        nsp(many_documents, documents[1:], seed=1),
        nsp(many_documents, documents, seed=1, max_length=65),
        nsp(many_documents, documents, seed=1, short_seq_prob=0.2),
        nsp(many_documents, documents, seed=1, duplicates=2),
        nsp(many_documents, documents, seed=1, special=SpecialIds(2, 4)),
        build_instances(many_documents, documents, objective="mlm", max_length=64, special=SPECIAL, seed=1),
    ]
    assert len({first.fingerprint, *(o.fingerprint for o in others)}) == 1 + len(others)


def test_saved_offsets_are_reused_and_rebuilt_when_stale_or_damaged(
    many_documents, tmp_path, monkeypatch, caplog
):
    folder = tmp_path / "instances"
    built = nsp(many_documents, np.arange(30), folder=folder)
    assert isinstance(built.rows, np.memmap)

    def no_build(*args, **kwargs):
        raise AssertionError("the saved instances should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(instances_module, "make_rows", no_build)
        reused = nsp(many_documents, np.arange(30), folder=folder)
    assert np.array_equal(reused.rows, built.rows) and reused.stats == built.stats
    with caplog.at_level(logging.INFO, logger="bertkit.pretrain.instances"):
        other = nsp(many_documents, np.arange(30), folder=folder, seed=9)
    assert "for other settings" in caplog.text
    assert not np.array_equal(other.rows, built.rows)
    expected = np.array(other.rows)  # a copy: cutting the file below changes what its memory map shows
    rows_file = folder / "instances.npy"
    rows_file.write_bytes(rows_file.read_bytes()[:-40])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bertkit.pretrain.instances"):
        again = nsp(many_documents, np.arange(30), folder=folder, seed=9)
    assert "damaged" in caplog.text
    assert np.array_equal(again.rows, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instances"]


def test_bad_arguments_are_refused(many_documents):
    with pytest.raises(BertkitError, match="objective must be one of"):
        nsp(many_documents, objective="nsp")
    with pytest.raises(BertkitError, match="max_length 4 leaves no room"):
        nsp(many_documents, max_length=4)
    with pytest.raises(BertkitError, match="document 300 is not in the token store"):
        nsp(many_documents, [0, 300])
    with pytest.raises(BertkitError, match="non-empty list of document numbers"):
        nsp(many_documents, [])
    with pytest.raises(BertkitError, match="repeat a document"):
        nsp(many_documents, [1, 1])
    with pytest.raises(BertkitError, match="duplicates must be at least 1"):
        nsp(many_documents, duplicates=0)


def test_split_is_disjoint_deterministic_and_never_empty():
    train, heldout = split_documents(100, 0.1, seed=4)
    assert len(heldout) == 10 and len(np.intersect1d(train, heldout)) == 0
    assert sorted([*train, *heldout]) == list(range(100))
    again = split_documents(100, 0.1, seed=4)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], heldout)
    assert not np.array_equal(split_documents(100, 0.1, seed=5)[1], heldout)
    assert [len(side) for side in split_documents(2, 0.001, seed=0)] == [1, 1]
    assert [len(side) for side in split_documents(3, 0.99, seed=0)] == [1, 2]
    assert len(split_documents(50, 7, seed=0)[1]) == 7
    for n, heldout_arg, message in [
        (1, 0.5, "need at least 2"),
        (10, 1.0, r"must be in \(0, 1\)"),
        (10, 0.0, r"must be in \(0, 1\)"),
        (10, 0, "must be 1 to 9"),
        (10, 10, "must be 1 to 9"),
        (10, True, "a share in"),
    ]:
        with pytest.raises(BertkitError, match=message):
            split_documents(n, heldout_arg, seed=0)
