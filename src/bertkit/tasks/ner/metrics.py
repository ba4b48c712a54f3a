"""Metrics of the field, as thin adapters over the reference implementations (seqeval for entities)."""

from __future__ import annotations

import warnings

from seqeval import metrics as seqeval_metrics
from seqeval import scheme as seqeval_scheme

from bertkit.data.tagschemes import to_seqeval


def entity_scores(gold: list[list[str]], pred: list[list[str]], scheme: str) -> dict:
    """Entity-level micro precision/recall/F1 (fractions 0..1) and a per-type table.

    Strict matching (an entity counts only with exact boundaries and type, read by the scheme's rules)
    for the schemes seqeval knows strictly; conlleval-style reading for IO.
    """
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted tag sequences differ in number or length")
    strict = to_seqeval([], scheme)[1]
    gold_tags = [to_seqeval(g, scheme)[0] for g in gold]
    pred_tags = [to_seqeval(p, scheme)[0] for p in pred]
    mode = {"mode": "strict", "scheme": getattr(seqeval_scheme, strict)} if strict else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns about undefined F1 for types never predicted
        report = seqeval_metrics.classification_report(
            gold_tags, pred_tags, output_dict=True, zero_division=0, **mode
        )
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {
        name: {
            "precision": float(r["precision"]),
            "recall": float(r["recall"]),
            "f1": float(r["f1-score"]),
            "support": int(r["support"]),
        }
        for name, r in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "support": int(micro["support"]),
        "per_type": per_type,
    }
