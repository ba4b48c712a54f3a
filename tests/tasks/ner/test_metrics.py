"""Tests for metrics.py: entity P/R/F1 by hand on small cases, strict vs lenient, BIOES/BMES, seqeval."""

from __future__ import annotations

import random
import warnings

import pytest
from seqeval import metrics as seqeval_metrics
from seqeval.scheme import IOB2, IOBES

from bertkit.tasks.ner.metrics import entity_scores


def close(value: float) -> object:
    return pytest.approx(value, abs=1e-12)


def test_hand_computed_iob2_case():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC"],  # PER[0,2) LOC[3,4)
        ["B-LOC", "O", "B-PER", "O"],  # LOC[0,1) PER[2,3)
        ["O", "B-PER", "O", "O"],  # PER[1,2)
    ]
    pred = [
        ["B-PER", "O", "O", "B-LOC"],  # PER[0,1): boundary error (wrong);   LOC[3,4): right
        ["B-PER", "O", "B-PER", "O"],  # PER[0,1): type error (wrong);       PER[2,3): right
        ["O", "O", "B-PER", "B-LOC"],  # PER[1,2) missed; PER[2,3) and LOC[3,4) spurious
    ]
    # gold: 5 entities (PER 3, LOC 2); predicted: 6 (PER 4, LOC 2); correct: 2 (PER 1, LOC 1)
    # micro P = 2/6 = 1/3, R = 2/5, F1 = 2PR/(P+R) = (4/15)/(11/15) = 4/11
    # PER   P = 1/4, R = 1/3, F1 = (2/12)/(7/12) = 2/7;   LOC  P = 1/2, R = 1/2, F1 = 1/2
    scores = entity_scores(gold, pred, "iob2")
    assert scores["precision"] == close(1 / 3)
    assert scores["recall"] == close(2 / 5)
    assert scores["f1"] == close(4 / 11)
    assert scores["support"] == 5
    assert scores["per_type"] == {
        "PER": {"precision": close(1 / 4), "recall": close(1 / 3), "f1": close(2 / 7), "support": 3},
        "LOC": {"precision": close(1 / 2), "recall": close(1 / 2), "f1": close(1 / 2), "support": 2},
    }
    assert all(isinstance(scores[k], float) for k in ("precision", "recall", "f1"))


def test_perfect_and_empty_predictions():
    gold = [["B-PER", "I-PER", "O"], ["O", "B-LOC"]]
    assert entity_scores(gold, gold, "iob2")["f1"] == 1.0
    nothing = entity_scores(gold, [["O"] * 3, ["O"] * 2], "iob2")
    # no predictions: P = 0/0, reported as 0 (zero_division=0); R = 0/2
    assert (nothing["precision"], nothing["recall"], nothing["f1"], nothing["support"]) == (0.0, 0.0, 0.0, 2)


def test_no_entities_anywhere():
    scores = entity_scores([["O", "O"]], [["O", "O"]], "iob2")
    assert (scores["precision"], scores["recall"], scores["f1"], scores["support"]) == (0.0, 0.0, 0.0, 0)
    assert scores["per_type"] == {}


def test_entity_only_in_prediction_gets_a_per_type_row():
    scores = entity_scores([["O", "O"]], [["B-ORG", "O"]], "iob2")
    # one spurious ORG: P = 0/1, R = 0/0 -> 0
    assert scores["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.parametrize(
    ("scheme", "expected_f1"),
    [
        # I-PER I-PER: strict IOB2 has no entity here (entities open with B-): P = 0/0, R = 0/1
        ("iob2", 0.0),
        # IO (conlleval reading) sees PER[0,2), the gold entity: P = R = F1 = 1
        ("io", 1.0),
    ],
)
def test_i_start_counts_only_in_lenient_reading(scheme, expected_f1):
    scores = entity_scores([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]], scheme)
    assert scores["f1"] == expected_f1
    assert scores["recall"] == expected_f1


def test_strict_iob2_type_change_inside_entity():
    # pred B-PER I-LOC: strict reads PER[0,1) only (I-LOC cannot continue PER, nor open an entity)
    # gold PER[0,1) LOC[1,2): 1 correct of 1 predicted, of 2 gold -> P = 1, R = 1/2, F1 = 2/3
    scores = entity_scores([["B-PER", "B-LOC"]], [["B-PER", "I-LOC"]], "iob2")
    assert (scores["precision"], scores["recall"]) == (close(1.0), close(0.5))
    assert scores["f1"] == close(2 / 3)


def test_bioes_strict():
    gold = [["B-PER", "E-PER", "O", "S-LOC"], ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]]
    pred = [["B-PER", "I-PER", "O", "S-LOC"], ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]]
    # gold: PER[0,2) LOC[3,4) | PER[0,1) LOC[2,5) = 4 (PER 2, LOC 2)
    # pred: B-PER I-PER is never closed -> no entity; LOC[3,4) | PER[0,1) LOC[2,5): 3 predicted, all right
    # P = 3/3, R = 3/4, F1 = 2*(3/4)/(7/4) = 6/7;  PER: P = 1/1, R = 1/2, F1 = 2/3;  LOC: 1, 1, 1
    scores = entity_scores(gold, pred, "bioes")
    assert (scores["precision"], scores["recall"], scores["f1"]) == (close(1.0), close(0.75), close(6 / 7))
    assert scores["per_type"]["PER"] == {
        "precision": close(1.0),
        "recall": close(0.5),
        "f1": close(2 / 3),
        "support": 2,
    }
    assert scores["per_type"]["LOC"]["f1"] == close(1.0)


def test_bmes_well_formed():
    gold = [["B-PER", "M-PER", "E-PER", "S-LOC"], ["B-ORG", "E-ORG", "O"]]
    pred = [["B-PER", "M-PER", "E-PER", "O"], ["B-ORG", "E-ORG", "S-LOC"]]
    # gold: PER[0,3) LOC[3,4) | ORG[0,2) = 3; pred: PER[0,3) | ORG[0,2) LOC[2,3) = 3; correct 2
    # P = R = F1 = 2/3; LOC: 0 of 1 predicted, 0 of 1 gold
    scores = entity_scores(gold, pred, "bmes")
    assert (scores["precision"], scores["recall"], scores["f1"]) == (close(2 / 3), close(2 / 3), close(2 / 3))
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["PER"]["f1"] == 1.0


def test_bmes_is_as_strict_as_bioes():
    gold = [["B-PER", "E-PER", "O", "S-LOC"]]
    bmes_pred = [["B-PER", "M-PER", "O", "S-LOC"]]  # PER never closed: no entity in a strict reading
    bioes_pred = [["B-PER", "I-PER", "O", "S-LOC"]]
    # strict: 1 of 1 predicted right, 1 of 2 gold found: P = 1, R = 1/2
    assert entity_scores(gold, bioes_pred, "bioes")["recall"] == 0.5
    assert entity_scores(gold, bmes_pred, "bmes") == entity_scores(gold, bioes_pred, "bioes")


def test_iob1_is_scored_by_its_spans():
    # a B- after O starts an entity in IOB1 (as conlleval reads it): gold has 4 entities, not 2
    gold = [["I-PER", "O", "O", "I-LOC"], ["B-PER", "O", "O", "B-LOC"]]
    assert entity_scores(gold, gold, "iob1")["support"] == 4
    # a wrong predicted entity after O is a false positive
    wrong = entity_scores([["O", "O", "O", "I-LOC"]], [["O", "B-PER", "O", "I-LOC"]], "iob1")
    assert (wrong["precision"], wrong["recall"]) == (0.5, 1.0)
    # the same span written B- I- or I- I- is the same entity
    assert entity_scores([["I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]], "iob1")["f1"] == 1.0
    # adjacent entities of one type stay two
    two = entity_scores([["I-PER", "B-PER"]], [["I-PER", "I-PER"]], "iob1")
    assert (two["support"], two["precision"], two["recall"]) == (2, 0.0, 0.0)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="differ"):
        entity_scores([["O", "O"]], [["O"]], "iob2")
    with pytest.raises(ValueError, match="differ"):
        entity_scores([["O"], ["O"]], [["O"]], "iob2")


def random_tags(rng: random.Random, n: int, prefixes: str) -> list[str]:
    types = ["PER", "LOC", "ORG"]
    return ["O" if rng.random() < 0.4 else f"{rng.choice(prefixes)}-{rng.choice(types)}" for _ in range(n)]


def seqeval_reference(gold, pred, **mode) -> tuple[float, float, float, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = seqeval_metrics.classification_report(gold, pred, output_dict=True, zero_division=0, **mode)
        return (
            seqeval_metrics.precision_score(gold, pred, zero_division=0, **mode),
            seqeval_metrics.recall_score(gold, pred, zero_division=0, **mode),
            seqeval_metrics.f1_score(gold, pred, zero_division=0, **mode),
            {k: v for k, v in report.items() if not k.endswith(" avg")},
        )


@pytest.mark.parametrize(
    ("scheme", "prefixes", "mode"),
    [
        ("iob2", "BI", {"mode": "strict", "scheme": IOB2}),
        ("bioes", "BIES", {"mode": "strict", "scheme": IOBES}),
        ("io", "I", {}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_seqeval_on_random_tags(scheme, prefixes, mode, seed):
    rng = random.Random(seed)
    lengths = [rng.randint(0, 15) for _ in range(40)]
    gold = [random_tags(rng, n, prefixes) for n in lengths]
    # predictions: gold with about a third of the tags re-drawn, so some entities match and some do not
    pred = [[t if rng.random() < 0.65 else random_tags(rng, 1, prefixes)[0] for t in g] for g in gold]
    scores = entity_scores(gold, pred, scheme)
    precision, recall, f1, per_type = seqeval_reference(gold, pred, **mode)
    assert 0 < f1 < 1  # a case that exercises both hits and misses
    assert scores["precision"] == close(precision)
    assert scores["recall"] == close(recall)
    assert scores["f1"] == close(f1)
    assert set(scores["per_type"]) == set(per_type)
    for name, row in per_type.items():
        assert scores["per_type"][name]["f1"] == close(row["f1-score"])
        assert scores["per_type"][name]["support"] == row["support"]
