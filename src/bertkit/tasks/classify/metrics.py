"""Metrics for text classification, multi-label classification and regression, as thin adapters over
scikit-learn and scipy; plus per-label threshold tuning and majority-class baselines.

Every number returned is a plain Python float or int, so the results can go straight into JSON.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer

DEFAULT_THRESHOLD = 0.5


def _check_same_length(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold and predictions differ in number: {len(gold)} vs {len(pred)}")
    if not gold:
        raise ValueError("no examples to score")


def _check_known(values: set[str], labels: list[str]) -> None:
    # scikit-learn silently leaves out labels missing from `labels`; that would hide a label-set mismatch.
    unknown = values - set(labels)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in the label set {labels}")


def _per_class(gold, pred, names: list[str], labels: list[str] | None) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each label, keyed by ``names`` (in scikit-learn's order)."""
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        gold, pred, labels=labels, zero_division=0
    )
    return {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(names, precision, recall, f1, support)
    }


def _mcc(gold: list[str], pred: list[str]) -> float:
    with warnings.catch_warnings():
        # With one label in gold and pred together scikit-learn warns about the confusion matrix shape;
        # the MCC (0.0) is right regardless.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return float(skm.matthews_corrcoef(gold, pred))


def classification_scores(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    """Accuracy, macro/micro/weighted F1, MCC, a per-class table and the confusion matrix.

    ``confusion[i][j]`` counts examples of gold ``labels[i]`` predicted as ``labels[j]``. Gold or
    predicted labels outside ``labels`` raise ValueError. Undefined precision/recall/F1 count as 0.
    """
    _check_same_length(gold, pred)
    _check_known(set(gold) | set(pred), labels)

    def f1(average: str) -> float:
        return float(skm.f1_score(gold, pred, labels=labels, average=average, zero_division=0))

    return {
        "accuracy": float(skm.accuracy_score(gold, pred)),
        "macro_f1": f1("macro"),
        "micro_f1": f1("micro"),
        "weighted_f1": f1("weighted"),
        "mcc": _mcc(gold, pred),
        "per_class": _per_class(gold, pred, labels, labels),
        "confusion": skm.confusion_matrix(gold, pred, labels=labels).tolist(),
    }


def _correlation(function, gold: np.ndarray, pred: np.ndarray) -> float:
    # A constant side (or fewer than two points) has no defined correlation; scipy gives NaN and a
    # warning. 0.0 ("no linear/rank relation") keeps reports numeric and makes a constant baseline score 0.
    if len(gold) < 2 or np.all(gold == gold[0]) or np.all(pred == pred[0]):
        return 0.0
    return float(function(gold, pred)[0])


def regression_scores(gold: list[float], pred: list[float]) -> dict:
    """Pearson and Spearman correlation, mean squared error and mean absolute error.

    A correlation with constant gold or constant predictions (or under two examples) is reported as
    0.0 rather than NaN. Non-finite values raise ValueError.
    """
    _check_same_length(gold, pred)
    g, p = np.asarray(gold, dtype=float), np.asarray(pred, dtype=float)
    if not (np.isfinite(g).all() and np.isfinite(p).all()):
        raise ValueError("gold and predicted values must be finite numbers")
    return {
        "pearson": _correlation(stats.pearsonr, g, p),
        "spearman": _correlation(stats.spearmanr, g, p),
        "mse": float(skm.mean_squared_error(g, p)),
        "mae": float(skm.mean_absolute_error(g, p)),
    }


def multilabel_scores(gold: list[list[str]], pred: list[list[str]], labels: list[str]) -> dict:
    """Micro and macro F1, exact match (every label of an example right) and a per-class table."""
    _check_same_length(gold, pred)
    _check_known({label for row in [*gold, *pred] for label in row}, labels)
    binarizer = MultiLabelBinarizer(classes=labels)
    g, p = binarizer.fit_transform(gold), binarizer.transform(pred)

    def f1(average: str) -> float:
        return float(skm.f1_score(g, p, average=average, zero_division=0))

    return {
        "micro_f1": f1("micro"),
        "macro_f1": f1("macro"),
        "exact_match": float(skm.accuracy_score(g, p)),  # subset accuracy for indicator matrices
        "per_class": _per_class(g, p, labels, None),  # the binarizer put columns in `labels` order
    }


def _default_grid() -> np.ndarray:
    # Rounded so that 0.3 is the double 0.3: `prob >= 0.30000000000000004` would miss a prob of 0.3.
    return np.round(np.linspace(0.05, 0.95, 19), 6)


def tune_thresholds(probs: np.ndarray, gold: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per label, the threshold from ``grid`` that maximises that label's F1 on ``(probs, gold)``.

    ``probs`` and ``gold`` are ``[n, k]``; an example counts as positive when ``prob >= threshold``.
    Ties go to the threshold closest to 0.5 (then the lower one); a label without positives in ``gold``
    keeps 0.5, as its F1 would be 0 whatever the threshold.
    """
    probs, gold = np.asarray(probs, dtype=float), np.asarray(gold).astype(bool)
    if probs.ndim != 2 or probs.shape != gold.shape:
        raise ValueError(f"probs and gold must both be [n, k]; got {probs.shape} and {gold.shape}")
    grid = np.sort(_default_grid() if grid is None else np.asarray(grid, dtype=float))
    chosen = np.full(probs.shape[1], DEFAULT_THRESHOLD)
    for k in range(probs.shape[1]):
        if not gold[:, k].any():
            continue
        predicted = probs[:, k, None] >= grid[None, :]  # [n, len(grid)]
        tp = (predicted & gold[:, k, None]).sum(0)
        fp = (predicted & ~gold[:, k, None]).sum(0)
        fn = gold[:, k].sum() - tp
        f1 = 2 * tp / (2 * tp + fp + fn)  # the denominator is > 0: this label has positives
        best = np.flatnonzero(f1 == f1.max())  # F1 values of equal fractions are equal doubles
        chosen[k] = grid[best[np.argmin(np.abs(grid[best] - DEFAULT_THRESHOLD))]]
    return chosen


def majority_baseline(
    train_labels: Sequence, eval_gold: Sequence, mode: str, labels: list[str] | None = None
) -> dict:
    """The scores on ``eval_gold`` of one constant prediction taken from the training labels.

    ``single``: the most frequent training label (ties: first in ``labels``); ``multi``: every label on
    more than half of the training examples; ``regression``: the training mean (its correlations are 0.0).
    The constant is returned too, under ``prediction``.
    """
    if not train_labels:
        raise ValueError("no training labels to take a baseline from")
    n = len(eval_gold)
    if mode == "single":
        counts = Counter(train_labels)
        names = labels or sorted(set(counts) | set(eval_gold))
        order = {label: i for i, label in enumerate(names)}
        guess = min(counts, key=lambda label: (-counts[label], order.get(label, len(order))))
        return {**classification_scores(list(eval_gold), [guess] * n, names), "prediction": guess}
    if mode == "multi":
        counts = Counter(label for row in train_labels for label in set(row))
        guess = sorted(label for label, c in counts.items() if c > len(train_labels) / 2)
        names = labels or sorted(set(counts) | {label for row in eval_gold for label in row})
        return {**multilabel_scores(list(eval_gold), [guess] * n, names), "prediction": guess}
    if mode == "regression":
        guess = float(np.mean(np.asarray(train_labels, dtype=float)))
        return {**regression_scores(list(eval_gold), [guess] * n), "prediction": guess}
    raise ValueError(f"unknown mode {mode!r}; expected single, multi or regression")
