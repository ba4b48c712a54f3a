"""Choosing what to label: uncertainty measures and the NER aggregation against hand-computed values, a
ranking that follows a stub model's set probabilities, diversity, budgets, and the files written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import VOCAB
from inference.saved_models import save_untrained

from bertkit.errors import BertkitError
from bertkit.inference.predictor import Predictor
from bertkit.inference.selection import (
    choose,
    entropy,
    margin,
    random_choice,
    record_uncertainty,
    require_family,
    select_records,
    write_selection,
)
from bertkit.records import TextExample

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_margin_and_entropy_of_three_classes_by_hand():
    probs = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.2, 0.7, 0.1]])
    h = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))  # 1.0297
    np.testing.assert_allclose(entropy(probs), [h, 0.0, math.log(3), entropy([0.7, 0.2, 0.1])])
    assert entropy([0.7, 0.2, 0.1]) == pytest.approx(
        -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    )
    np.testing.assert_allclose(margin(probs), [1 - (0.5 - 0.3), 0.0, 1.0, 1 - (0.7 - 0.2)])


def test_a_sentence_scores_its_least_certain_word_or_the_mean():
    words = np.array([[0.9, 0.1], [0.5, 0.5]])
    confident = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))  # 0.3251
    assert record_uncertainty(words, "entropy", "max") == pytest.approx(math.log(2))
    assert record_uncertainty(words, "entropy", "mean") == pytest.approx((confident + math.log(2)) / 2)
    assert record_uncertainty(words, "margin", "mean") == pytest.approx((0.2 + 1.0) / 2)
    assert record_uncertainty(np.zeros((0, 2)), "entropy") == 0.0  # an empty sentence


def test_without_diversity_the_top_scores_are_taken_in_order():
    assert choose(np.array([0.1, 0.9, 0.5, 0.7]), 3, diverse=False) == [1, 3, 2]


def test_diversity_drops_an_exact_duplicate_and_spreads_the_batch():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    keys = ["a", "a", "b", "c"]
    # 0, 1 and 2 point the same way; 3 is orthogonal to them
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert choose(scores, 2, keys=keys, embeddings=emb, diverse=False) == [0, 1]
    assert choose(scores, 2, keys=keys, embeddings=emb) == [0, 3]  # 1 is a copy of 0, 2 is next to it
    assert choose(scores, 3, keys=keys, embeddings=emb) == [0, 2, 3]


def test_random_choice_is_seeded():
    assert random_choice(50, 10, 1) == random_choice(50, 10, 1) != random_choice(50, 10, 2)
    assert len(set(random_choice(50, 10, 1))) == 10
    assert random_choice(3, 3, 0, keys=["x", "x", "y"]) in ([0, 2], [2, 0], [1, 2], [2, 1])


def test_other_families_are_refused():
    with pytest.raises(
        BertkitError, match="select supports classify, ner models; this model is a 'qa' model"
    ):
        require_family("qa")


class StubModel(torch.nn.Module):
    """The saved model's encoder runs (its output feeds the embeddings), but the logits are set by hand:
    ``table[token id]`` at every position (``per_position``) or of the first word of each row."""

    def __init__(self, real: torch.nn.Module, table: torch.Tensor, per_position: bool):
        super().__init__()
        self.real, self.table, self.per_position = real, table, per_position

    @property
    def base_model(self) -> torch.nn.Module:
        return self.real.base_model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        self.real.base_model(input_ids=input_ids, attention_mask=attention_mask)
        logits = self.table[input_ids] if self.per_position else self.table[input_ids[:, 1]]
        return SimpleNamespace(logits=logits)


def stub_predictor(
    task_name: str, tiny_bert: Path, out: Path, rows: dict[str, list[float]], per_position: bool
):
    predictor = Predictor.load(save_untrained(task_name, tiny_bert, out), threads=1)
    n_labels = len(predictor.task.labels)
    table = torch.full((len(VOCAB), n_labels), math.log(1e-6))
    table[:, 0] = 0.0  # every other word: confidently the first label
    for word, probs in rows.items():
        table[VOCAB.index(word)] = torch.log(torch.tensor(probs))
    predictor.model = StubModel(predictor.model, table, per_position)
    return predictor


@pytest.fixture(scope="module")
def classifier(tiny_bert, tmp_path_factory):
    rows = {
        "alice": [0.98, 0.01, 0.01],
        "bob": [0.4, 0.35, 0.25],
        "carol": [0.6, 0.3, 0.1],
        "dave": [1 / 3] * 3,
    }
    return stub_predictor("classify", tiny_bert, tmp_path_factory.mktemp("stub_classify"), rows, False)


TEXTS = ["alice went home", "bob went home", "carol went home", "dave went home"]


def test_the_ranking_follows_the_models_uncertainty(classifier):
    records = [TextExample(text=t) for t in TEXTS]
    run = classifier.model, classifier.task, records, classifier.runtime
    by_margin = select_records(*run, 4, "margin", diverse=False)
    assert by_margin.indices == [3, 1, 2, 0]  # dave, bob, carol, alice
    assert by_margin.scores == pytest.approx(
        [1.0, 1 - (0.4 - 0.35), 1 - (0.6 - 0.3), 1 - (0.98 - 0.01)], abs=1e-5
    )
    by_entropy = select_records(*run, 2, "entropy", diverse=False)
    assert by_entropy.indices == [3, 1]
    assert by_entropy.scores == pytest.approx([math.log(3), entropy([0.4, 0.35, 0.25])], abs=1e-5)


def test_a_budget_beyond_the_pool_takes_every_distinct_record(classifier, caplog):
    records = [
        TextExample(text=t) for t in [*TEXTS, "bob went home"]
    ]  # bob twice: the most uncertain after dave
    run = classifier.model, classifier.task, records, classifier.runtime
    assert sorted(select_records(*run, 10, "margin", diverse=False).indices) == [0, 1, 2, 3, 4]
    diverse = select_records(*run, 10, "margin")
    assert sorted(diverse.indices) in ([0, 1, 2, 3], [0, 2, 3, 4]) and "distinct records" in caplog.text
    assert select_records(*run, 2, "margin", diverse=False).indices == [3, 1]
    assert 4 not in select_records(*run, 2, "margin").indices  # its copy 1 came first


def test_classify_output_reads_back_with_exactly_n_records(classifier, tmp_path):
    src = tmp_path / "pool.tsv"
    src.write_text("text\n" + "\n".join(TEXTS) + "\n")
    records = classifier.task.read(str(src), labelled=False)
    chosen = select_records(classifier.model, classifier.task, records, classifier.runtime, 3, "entropy")
    out = tmp_path / "next.tsv"
    sidecar = write_selection(classifier.task, records, chosen, str(src), str(out))
    back = classifier.task.read(str(out), labelled=False)
    assert [r.text for r in back] == [TEXTS[i] for i in chosen.indices] and len(back) == 3
    rows = [json.loads(line) for line in Path(sidecar).read_text().splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3] and [r["line"] for r in rows] == [
        i + 2 for i in chosen.indices
    ]
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    write_selection(classifier.task, records, chosen, str(jsonl), str(tmp_path / "next.jsonl"))
    assert len(classifier.task.read(str(tmp_path / "next.jsonl"), labelled=False)) == 3


def test_ner_scores_each_sentence_by_its_words_and_writes_conll(tiny_bert, tmp_path):
    uniform = [0.2] * 5
    predictor = stub_predictor(
        "ner", tiny_bert, tmp_path / "model", {"alice": uniform, "paris": uniform}, True
    )
    sentences = [["the", "big", "home"], ["alice", "went", "home"], ["bob", "saw", "paris", "and", "alice"]]
    src = tmp_path / "pool.conll"
    src.write_text("".join("".join(f"{w}\n" for w in s) + "\n" for s in sentences))
    records = predictor.task.read(str(src), labelled=False)
    assert [r.tokens for r in records] == sentences
    run = predictor.model, predictor.task, records, predictor.runtime
    sure = float(entropy(np.array([1.0] + [1e-6] * 4) / (1 + 4e-6)))  # a confident word, by hand
    by_max = select_records(*run, 3, "entropy", diverse=False)
    assert by_max.indices[2] == 0 and by_max.scores == pytest.approx(
        [math.log(5), math.log(5), sure], abs=1e-4
    )
    by_mean = select_records(*run, 3, "entropy", diverse=False, aggregate="mean")
    assert by_mean.indices == [2, 1, 0]  # two unclear words of five beat one of three
    assert by_mean.scores == pytest.approx(
        [(2 * math.log(5) + 3 * sure) / 5, (math.log(5) + 2 * sure) / 3, sure], abs=1e-4
    )
    out = tmp_path / "next.conll"
    write_selection(predictor.task, records, select_records(*run, 2, "margin"), str(src), str(out))
    back = predictor.task.read(str(out))
    assert len(back) == 2 and all(set(r.tags) == {"O"} for r in back)
    assert sorted(r.tokens for r in back) == sorted(sentences[1:])
