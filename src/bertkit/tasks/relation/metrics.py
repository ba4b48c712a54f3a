"""The official SemEval-2010 Task 8 score, as ``semeval2010_task8_scorer-v1.2.pl`` computes it, for
any label set whose directed labels are written ``Relation(e1,e2)`` / ``Relation(e2,e1)``.

The official figure is the "(9+1)-way evaluation taking directionality into account": labels are
scored per relation with the direction stripped, but a prediction counts as correct only with the right
direction too. For each relation R of the gold labels (``Other`` left out):

- correct: predicted label == gold label, the gold relation being R;
- predicted: every prediction of R, whatever its direction. The Perl script keeps wrong-direction
  predictions in a column of their own (``xDIRx``) and adds them back into the denominator of
  precision, ``P = correct / (proposed + wrongDirection)``, which is this count;
- gold: every gold label of R, whatever its direction (``R = correct / gold``).

F1 is ``2PR / (P + R)`` (0 when both are 0). The macro averages divide by the number of relations
present in the gold labels (9 on SemEval), as the script does; the micro averages sum the counts of
those relations. Accuracy is exact-label accuracy (direction included, ``Other`` included), which is what
the script prints for that confusion matrix. Numbers are fractions, not the script's percentages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

DIRECTED = re.compile(r"^(?P<relation>.+)\((?P<args>e1,e2|e2,e1)\)$")


def relation_of(label: str) -> str:
    """The relation without its direction: ``Cause-Effect(e2,e1)`` -> ``Cause-Effect``."""
    match = DIRECTED.match(label)
    return match.group("relation") if match else label


def mirrored(label: str) -> str:
    """The same relation the other way round: ``R(e1,e2)`` <-> ``R(e2,e1)``; undirected labels as they are."""
    match = DIRECTED.match(label)
    if not match:
        return label
    return f"{match.group('relation')}({'e2,e1' if match.group('args') == 'e1,e2' else 'e1,e2'})"


def relation_scores(
    gold: Sequence[str],
    pred: Sequence[str],
    negative: str | None = "Other",
    labels: Sequence[str] | None = None,
) -> dict:
    """The official score (``macro_f1``) with its precision and recall, the micro averages, accuracy,
    the macro F1 with direction ignored (``undirected_f1``, the script's "(9+1)-way ignoring
    directionality") and a per-relation table (``per_class``).

    ``negative`` is the no-relation label, left out of every average (None: none is). With ``labels``
    (the directed label set), ``confusion[i][j]`` counts gold ``labels[i]`` predicted as ``labels[j]``.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold and predictions differ in number: {len(gold)} vs {len(pred)}")
    if not gold:
        raise ValueError("no examples to score")
    table = per_relation(gold, pred, negative, directed=True)
    out = {
        **averages(table),
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold),
        "undirected_f1": averages(per_relation(gold, pred, negative, directed=False))["macro_f1"],
        "per_class": table,
    }
    if labels is not None:
        index = {label: i for i, label in enumerate(labels)}
        unknown = sorted((set(gold) | set(pred)) - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not in the label set {list(labels)}")
        confusion = [[0] * len(labels) for _ in labels]
        for g, p in zip(gold, pred):
            confusion[index[g]][index[p]] += 1
        out["confusion"] = confusion
    return out


def per_relation(
    gold: Sequence[str], pred: Sequence[str], negative: str | None, directed: bool
) -> dict[str, dict[str, float | int]]:
    """Counts and P/R/F1 of each gold relation but ``negative`` (directions merged, see the docstring)."""
    relations = sorted({relation_of(g) for g in gold} - {negative})
    counts = {r: Counter() for r in relations}
    for g, p in zip(gold, pred):
        rg, rp = relation_of(g), relation_of(p)
        if rp in counts:
            counts[rp]["predicted"] += 1
        if rg not in counts:
            continue
        counts[rg]["support"] += 1
        if rp == rg and (p == g or not directed):
            counts[rg]["correct"] += 1
        elif rp == rg:
            counts[rg]["wrong_direction"] += 1
    table = {}
    for relation, c in counts.items():
        precision = c["correct"] / c["predicted"] if c["predicted"] else 0.0
        recall = c["correct"] / c["support"] if c["support"] else 0.0
        table[relation] = {
            "precision": precision,
            "recall": recall,
            "f1": f1_of(precision, recall),
            "support": c["support"],
            "correct": c["correct"],
            "predicted": c["predicted"],
            "wrong_direction": c["wrong_direction"],
        }
    return table


def averages(table: dict[str, dict[str, float | int]]) -> dict[str, float]:
    """Macro averages over the relations of ``table`` and micro averages of their summed counts."""
    n = len(table)
    correct = sum(s["correct"] for s in table.values())
    predicted = sum(s["predicted"] for s in table.values())
    support = sum(s["support"] for s in table.values())
    micro_p = correct / predicted if predicted else 0.0
    micro_r = correct / support if support else 0.0
    return {
        "macro_f1": sum(s["f1"] for s in table.values()) / n if n else 0.0,
        "macro_precision": sum(s["precision"] for s in table.values()) / n if n else 0.0,
        "macro_recall": sum(s["recall"] for s in table.values()) / n if n else 0.0,
        "micro_f1": f1_of(micro_p, micro_r),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
    }


def f1_of(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def majority_label(train_labels: Sequence[str], labels: Sequence[str]) -> str:
    """The most frequent training label (ties: first in ``labels``)."""
    counts = Counter(train_labels)
    order = {label: i for i, label in enumerate(labels)}
    return min(counts, key=lambda label: (-counts[label], order.get(label, len(order))))
