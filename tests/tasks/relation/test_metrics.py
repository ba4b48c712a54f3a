"""Tests for tasks/relation/metrics.py: the official SemEval-2010 Task 8 score against one worked by hand."""

from __future__ import annotations

import pytest

from bertkit.tasks.relation.metrics import majority_label, mirrored, relation_of, relation_scores

CE, CE_R = "Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)"
MT, MT_R = "Message-Topic(e1,e2)", "Message-Topic(e2,e1)"
IA = "Instrument-Agency(e1,e2)"

# gold, predicted
PAIRS = [
    (CE, CE),  # 1 correct
    (CE, CE_R),  # 2 right relation, wrong direction
    (CE_R, CE_R),  # 3 correct
    (CE_R, "Other"),  # 4 missed
    (MT, MT),  # 5 correct
    (MT, CE),  # 6 wrong relation: a Cause-Effect prediction, a missed Message-Topic
    ("Other", MT_R),  # 7 a Message-Topic prediction where there is none
    ("Other", "Other"),  # 8 correct, but Other is no relation
    ("Other", IA),  # 9 a relation that gold never has
    (MT_R, MT),  # 10 wrong direction
]
GOLD, PRED = [g for g, _ in PAIRS], [p for _, p in PAIRS]

# By hand, as semeval2010_task8_scorer-v1.2.pl counts the "(9+1)-way, directionality taken into account":
# Cause-Effect   correct 1,3 = 2; predicted (either direction) 1,2,3,6 = 4; gold 1,2,3,4 = 4
#                P = 2/4, R = 2/4, F1 = 1/2 (the script: 2 / (3 proposed + 1 xDIRx))
# Message-Topic  correct 5 = 1;   predicted 5,7,10 = 3;         gold 5,6,10 = 3
#                P = 1/3, R = 1/3, F1 = 1/3
# Instrument-Agency is not in gold and Other is excluded: the macro F1 is (1/2 + 1/3) / 2 = 5/12.
# Micro: 3 correct of 7 predicted and 7 gold. Accuracy: 1,3,5,8 = 4/10.
# Ignoring direction: CE 3/4 and 3/4 -> 3/4, MT 2/3 and 2/3 -> 2/3; macro (3/4 + 2/3) / 2 = 17/24.


def test_official_score_matches_the_hand_computed_one():
    scores = relation_scores(GOLD, PRED)
    assert scores["macro_f1"] == pytest.approx(5 / 12)
    assert scores["macro_precision"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert scores["macro_recall"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert scores["micro_precision"] == pytest.approx(3 / 7)
    assert scores["micro_recall"] == pytest.approx(3 / 7)
    assert scores["accuracy"] == pytest.approx(0.4)
    assert scores["undirected_f1"] == pytest.approx(17 / 24)
    assert set(scores["per_class"]) == {"Cause-Effect", "Message-Topic"}
    ce = scores["per_class"]["Cause-Effect"]
    assert (ce["correct"], ce["predicted"], ce["support"], ce["wrong_direction"]) == (2, 4, 4, 1)
    mt = scores["per_class"]["Message-Topic"]
    assert (mt["correct"], mt["predicted"], mt["support"], mt["wrong_direction"]) == (1, 3, 3, 1)


def test_it_is_not_a_macro_f1_over_directed_labels():
    from sklearn.metrics import f1_score

    directed = [CE, CE_R, MT, MT_R]
    naive = f1_score(GOLD, PRED, labels=directed, average="macro", zero_division=0)
    assert naive != pytest.approx(relation_scores(GOLD, PRED)["macro_f1"])


def test_a_wrong_direction_is_wrong_and_a_right_one_is_right():
    assert relation_scores([CE, CE_R], [CE_R, CE])["macro_f1"] == 0.0
    assert relation_scores([CE, CE_R, "Other"], [CE, CE_R, "Other"])["macro_f1"] == 1.0


def test_confusion_follows_the_label_order_and_refuses_unknown_labels():
    labels = [CE, CE_R, IA, MT, MT_R, "Other"]
    confusion = relation_scores(GOLD, PRED, labels=labels)["confusion"]
    assert sum(map(sum, confusion)) == len(PAIRS)
    assert confusion[labels.index(CE)][labels.index(CE_R)] == 1
    assert confusion[labels.index("Other")][labels.index(IA)] == 1
    with pytest.raises(ValueError, match="not in the label set"):
        relation_scores(GOLD, PRED, labels=[CE, CE_R])


def test_no_negative_label_counts_every_label():
    scores = relation_scores(["a", "b", "b"], ["a", "a", "b"], negative=None)
    # a: P 1/2 R 1 F1 2/3; b: P 1 R 1/2 F1 2/3
    assert scores["macro_f1"] == pytest.approx(2 / 3)
    assert set(scores["per_class"]) == {"a", "b"}


def test_relation_of_strips_only_a_direction():
    assert relation_of(CE_R) == "Cause-Effect"
    assert relation_of("Other") == "Other"
    assert relation_of("per:title(x)") == "per:title(x)"


def test_majority_label_breaks_ties_by_label_order():
    assert majority_label(["b", "a", "b", "a"], ["a", "b"]) == "a"
    assert majority_label(["b", "a", "b"], ["a", "b"]) == "b"


def test_mirrored_turns_only_directed_labels_round():
    assert mirrored(CE) == CE_R and mirrored(CE_R) == CE
    assert mirrored("Other") == "Other"
