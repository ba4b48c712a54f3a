"""Tests for metrics_classify.py: against scikit-learn/scipy on random cases, by hand on tiny ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from bertkit.tasks.classify.metrics import (
    classification_scores,
    majority_baseline,
    multilabel_scores,
    regression_scores,
    tune_thresholds,
)


def test_classification_tiny_case_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    s = classification_scores(gold, pred, ["a", "b", "c"])
    # Rows gold, columns pred: a -> a twice, b once; b -> b once, c once; c -> c once.
    assert s["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["micro_f1"] == pytest.approx(4 / 6)  # single-label micro F1 is accuracy
    # a: P = 2/2, R = 2/3, F1 = 2PR/(P+R) = (4/3)/(5/3) = 0.8; b: P = R = 1/2, F1 = 0.5;
    # c: P = 1/2, R = 1/1, F1 = 1/1.5 = 2/3.
    assert s["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert s["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert s["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    # Multi-class MCC = (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) with c = 4 correct,
    # s = 6, predicted counts p = (2, 2, 2), gold counts t = (3, 2, 1): (24 - 12) / sqrt(24 * 22).
    assert s["mcc"] == pytest.approx(12 / math.sqrt(24 * 22))
    json.dumps(s)  # plain Python numbers only


@pytest.mark.parametrize("seed", range(5))
def test_classification_matches_sklearn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    labels = ["neg", "neu", "pos", "rare"]
    gold = list(rng.choice(labels[:3], 60))
    pred = list(rng.choice(labels, 60))
    s = classification_scores(gold, pred, labels)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(gold, pred))
    assert s["mcc"] == pytest.approx(skm.matthews_corrcoef(gold, pred))
    for average in ("macro", "micro", "weighted"):
        expected = skm.f1_score(gold, pred, labels=labels, average=average, zero_division=0)
        assert s[f"{average}_f1"] == pytest.approx(expected)
    f1 = skm.f1_score(gold, pred, labels=labels, average=None, zero_division=0)
    assert [s["per_class"][label]["f1"] for label in labels] == pytest.approx(list(f1))
    assert s["per_class"]["rare"]["support"] == 0
    assert s["confusion"] == skm.confusion_matrix(gold, pred, labels=labels).tolist()
    assert all(type(s[key]) is float for key in ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "mcc"))


def test_classification_rejects_labels_outside_the_set_and_length_mismatch():
    with pytest.raises(ValueError, match="not in the label set"):
        classification_scores(["a", "b"], ["a", "z"], ["a", "b"])
    with pytest.raises(ValueError, match="differ in number"):
        classification_scores(["a"], ["a", "b"], ["a", "b"])


def test_regression_tiny_case_by_hand():
    s = regression_scores([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    # Errors 0, -1, 1: MSE = 2/3, MAE = 2/3. Deviations (-1, 0, 1) and (-1, 1, 0): r = 1 / sqrt(2 * 2).
    assert s == pytest.approx({"pearson": 0.5, "spearman": 0.5, "mse": 2 / 3, "mae": 2 / 3})


@pytest.mark.parametrize("seed", range(5))
def test_regression_matches_scipy_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    gold = rng.normal(size=40)
    pred = gold + rng.normal(scale=0.7, size=40)
    s = regression_scores(list(gold), list(pred))
    assert s["pearson"] == pytest.approx(stats.pearsonr(gold, pred)[0])
    assert s["spearman"] == pytest.approx(stats.spearmanr(gold, pred)[0])
    assert s["mse"] == pytest.approx(skm.mean_squared_error(gold, pred))
    assert s["mae"] == pytest.approx(skm.mean_absolute_error(gold, pred))
    json.dumps(s)


def test_regression_constant_input_gives_zero_correlation(recwarn):
    s = regression_scores([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert s["pearson"] == 0.0 and s["spearman"] == 0.0
    assert s["mse"] == pytest.approx(2 / 3)
    assert not recwarn.list  # scipy's ConstantInputWarning is not triggered
    with pytest.raises(ValueError, match="finite"):
        regression_scores([1.0, float("nan")], [1.0, 2.0])


def test_multilabel_tiny_case_by_hand():
    gold = [["x"], ["x", "y"], []]
    pred = [["x"], ["y"], ["z"]]
    s = multilabel_scores(gold, pred, ["x", "y", "z"])
    # x: tp 1, fn 1 -> P 1, R 1/2, F1 2/3; y: tp 1 -> F1 1; z: fp 1, no positives -> all 0.
    assert s["per_class"]["x"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert s["per_class"]["y"]["f1"] == 1.0
    assert s["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # Micro: tp 2, fp 1, fn 1 -> P = R = F1 = 2/3. Macro: (2/3 + 1 + 0) / 3. Only row 0 is exactly right.
    assert s["micro_f1"] == pytest.approx(2 / 3)
    assert s["macro_f1"] == pytest.approx(5 / 9)
    assert s["exact_match"] == pytest.approx(1 / 3)
    json.dumps(s)


def test_multilabel_matches_sklearn_on_random_cases():
    rng = np.random.default_rng(7)
    labels = ["a", "b", "c", "d"]
    g, p = rng.random((50, 4)) < 0.4, rng.random((50, 4)) < 0.4
    gold_lists = [[label for label, on in zip(labels, row) if on] for row in g]
    pred_lists = [[label for label, on in zip(labels, row) if on] for row in p]
    s = multilabel_scores(gold_lists, pred_lists, labels)
    assert s["micro_f1"] == pytest.approx(skm.f1_score(g, p, average="micro"))
    assert s["macro_f1"] == pytest.approx(skm.f1_score(g, p, average="macro", zero_division=0))
    assert s["exact_match"] == pytest.approx(np.mean((g == p).all(axis=1)))
    assert s["per_class"]["c"]["support"] == int(g[:, 2].sum())


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    return skm.f1_score(gold, pred, zero_division=0)


def test_tune_thresholds_finds_the_known_best_and_it_beats_the_grid():
    rng = np.random.default_rng(0)
    positives = np.concatenate([[0.3, 0.4], rng.uniform(0.3, 0.4, 30)])
    negatives = np.concatenate([[0.25, 0.1], rng.uniform(0.1, 0.25, 60)])
    probs = np.concatenate([positives, negatives])
    gold = np.concatenate([np.ones(32), np.zeros(62)]).astype(int)
    # Label 1 is noisy: its best threshold is whatever the brute force over the grid says.
    noisy = np.clip(gold * 0.2 + rng.uniform(0, 0.8, len(gold)), 0, 1)
    chosen = tune_thresholds(np.stack([probs, noisy], 1), np.stack([gold, gold], 1))
    assert 0.25 < chosen[0] <= 0.3  # everything >= 0.3 is positive, the negative at 0.25 is not
    grid = np.round(np.linspace(0.05, 0.95, 19), 6)
    for k, column in enumerate((probs, noisy)):
        best = max(_f1(column >= t, gold) for t in grid)
        assert _f1(column >= chosen[k], gold) == pytest.approx(best)


def test_tune_thresholds_ties_and_labels_without_positives():
    probs = np.array([[0.9, 0.2, 0.7], [0.05, 0.8, 0.3], [0.92, 0.1, 0.65]])
    gold = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    chosen = tune_thresholds(probs, gold)
    # Label 0: every threshold in [0.1, 0.9] is perfect -> the one closest to 0.5. Label 1: no positives.
    assert chosen[0] == pytest.approx(0.5) and chosen[1] == 0.5
    assert 0.3 < chosen[2] <= 0.65 and chosen[2] == pytest.approx(0.5)
    # Equally close to 0.5 on both sides: the lower one.
    assert tune_thresholds(probs[:, :1], gold[:, :1], grid=[0.4, 0.6])[0] == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"\[n, k\]"):
        tune_thresholds(probs, gold[:, :2])


def test_majority_baseline_single():
    s = majority_baseline(["a", "a", "b"], ["a", "b", "b", "c"], "single", ["a", "b", "c"])
    assert s["prediction"] == "a"
    assert s["accuracy"] == pytest.approx(1 / 4)
    # Always "a": P(a) = 1/4, R(a) = 1, F1(a) = 2 * (1/4) / (5/4) = 0.4; b and c get 0. Macro = 0.4/3.
    assert s["macro_f1"] == pytest.approx(0.4 / 3)
    assert s["mcc"] == 0.0
    assert s["confusion"] == [[1, 0, 0], [2, 0, 0], [1, 0, 0]]
    # Ties go to the label first in the label list.
    assert majority_baseline(["b", "a"], ["a"], "single", ["b", "a"])["prediction"] == "b"
    assert majority_baseline(["b", "a"], ["a"], "single", ["a", "b"])["prediction"] == "a"


def test_majority_baseline_regression_and_multi():
    s = majority_baseline([1.0, 2.0, 3.0], [1.0, 3.0], "regression")
    # Constant prediction 2.0: errors -1, 1 -> MSE 1, MAE 1; correlations with a constant are 0.
    assert s == {"pearson": 0.0, "spearman": 0.0, "mse": 1.0, "mae": 1.0, "prediction": 2.0}
    m = majority_baseline([["x"], ["x", "y"], ["x"], ["y"]], [["x"], ["y"]], "multi", ["x", "y"])
    # x is on 3/4 of the training examples (> 1/2), y on exactly 1/2 (not more): predict ["x"].
    assert m["prediction"] == ["x"]
    assert m["exact_match"] == 0.5
    assert m["micro_f1"] == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    json.dumps(m)
    with pytest.raises(ValueError, match="unknown mode"):
        majority_baseline(["a"], ["a"], "ranking")
