"""The bias probe: a saved model's predictions on every filling of the templates, compared group by group.

Per slot and group, the mean of a measure (a class's probability for classification; entity recall of
the slot's word for NER) with a 95% bootstrap interval; per pair of groups, the gap between their means
and the flip rate of their counterfactual pairs. ``probe_words/`` holds the bundled templates and lists.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.atomic import atomic_path, write_json, write_text
from bertkit.data.tagschemes import split_tag
from bertkit.errors import BertkitError
from bertkit.inference.probe_templates import Filling, SlotOptions, Template, expand
from bertkit.reporting.probe_report import plot_probe, probe_markdown

log = logging.getLogger(__name__)

PAIRINGS = ("index", "all")
# the entity type an NER model should find in a bundled slot: the first of these its labels have
DEFAULT_ENTITY = {
    "name": ("person", "PER", "PERSON", "per", "NAME", "人名"),
    "given": ("person", "PER", "PERSON", "per", "NAME", "人名"),
    "province": ("location", "LOC", "GPE", "loc", "地名"),
    "nationality": ("NORP",),
    "religion": ("NORP",),
    "ethnicity": ("NORP",),
}


@dataclass
class ProbeOptions:
    """How the probe compares groups (the CLI flags of ``bertkit probe``)."""

    focus: str | None = None  # classify: the class whose probability is compared (default: see focus_class)
    entities: dict[str, str] = field(default_factory=dict)  # NER: slot -> entity type expected there
    pairing: str = "index"  # counterfactual pairs: same position in both groups, or every pair of words
    n_boot: int = 1000  # bootstrap resamples of the intervals (0: no intervals)
    seed: int = 0
    top: int = 10  # gaps listed under "largest_gaps"
    chunk: int = 1024  # fillings predicted per call, between progress lines


@dataclass
class Score:
    """What one filling says about one of its slots: the measures' values and the outcome a flip
    compares (the predicted label; for NER, whether the slot's word was found)."""

    values: dict[str, float]
    outcome: Hashable


# -- scoring: the one place that knows what a family's result means ------------------------------------


class ClassifyScorer:
    """Probability of every class; the outcome is the predicted label (a set of them for multi-label)."""

    def __init__(self, labels: list[str], focus: str):
        self.labels, self.focus = labels, focus
        self.main = f"p({focus})"

    def measures(self) -> list[str]:
        return [self.main, *(f"p({lab})" for lab in self.labels if lab != self.focus)]

    def score(self, template: Template, filling: Filling, slot: str, result: Any) -> Score:
        label = tuple(result.label) if isinstance(result.label, list) else result.label
        return Score({f"p({lab})": float(p) for lab, p in result.probs.items()}, label)

    def describe(self) -> dict[str, Any]:
        return {"measure": self.main, "class": self.focus, "labels": self.labels}


class NerScorer:
    """Recall of the slot's word: found as an entity of the expected type (of any type where no type is
    expected), and found as any entity. A word is found when one predicted entity covers all of it."""

    main = "recall"

    def __init__(self, types: list[str], entities: dict[str, str]):
        self.types, self.entities = types, entities
        self.expected_seen: dict[str, set] = defaultdict(set)

    def measures(self) -> list[str]:
        return ["recall", "recall_any"]

    def expected(self, template: Template, slot: str) -> str | None:
        option = template.options.get(slot, SlotOptions()).entity
        if option or slot in self.entities:
            return option or self.entities[slot]
        return next((t for t in DEFAULT_ENTITY.get(slot, ()) if t in self.types), None)

    def score(self, template: Template, filling: Filling, slot: str, result: Any) -> Score:
        expected = self.expected(template, slot)
        self.expected_seen[slot].add(expected)
        found_any = all(covering(result.entities, span) is not None for span in filling.spans[slot])
        found = found_any and (
            expected is None
            or all(covering(result.entities, span, expected) is not None for span in filling.spans[slot])
        )
        return Score({"recall": float(found), "recall_any": float(found_any)}, found)

    def describe(self) -> dict[str, Any]:
        return {"measure": self.main, "entity_types": self.types}


def covering(entities: Sequence[Any], span: tuple[int, int], label: str | None = None) -> Any:
    """The first entity (of type ``label``, when given) whose characters include all of ``span``."""
    start, end = span
    return next(
        (e for e in entities if e.start <= start and e.end >= end and (label is None or e.label == label)),
        None,
    )


def focus_class(labels: list[str], results: Sequence[Any], asked: str | None) -> str:
    """The class compared: the one asked for; for two classes the second (the positive one of 0/1,
    neg/pos); otherwise the first class that is not the one predicted most often."""
    if asked is not None:
        if asked not in labels:
            raise BertkitError(f"--class {asked!r}: the model's classes are {', '.join(labels)}")
        return asked
    if len(labels) == 2:
        return labels[1]
    counts = Counter(r.label for r in results if isinstance(r.label, str))
    majority = counts.most_common(1)[0][0] if counts else None
    return next(lab for lab in labels if lab != majority)


def classify_scorer(task: Any, results: Sequence[Any], options: ProbeOptions) -> ClassifyScorer:
    labels = list(task.labels or [])
    if getattr(task, "mode", "single") == "regression":
        raise BertkitError("probe compares class probabilities; this model is a regression model")
    return ClassifyScorer(labels, focus_class(labels, results, options.focus))


def ner_scorer(task: Any, results: Sequence[Any], options: ProbeOptions) -> NerScorer:
    types = sorted({split_tag(tag)[1] for tag in task.labels or []} - {""})
    if unknown := {t for t in options.entities.values() if t not in types}:
        raise BertkitError(f"--entity type(s) {sorted(unknown)} unknown; the model tags {', '.join(types)}")
    return NerScorer(types, options.entities)


# What a prediction says about a group differs by family, so the probe names the two it can read:
# classify's results (``label``, ``probs``) and ner's (``entities`` with character offsets).
SCORERS = {"classify": classify_scorer, "ner": ner_scorer}


def scorer_for(task: Any) -> Any:
    """The scorer builder of the model's family; probing means something for classify and ner only."""
    if task.name not in SCORERS:
        raise BertkitError(f"probe supports classify and ner models; this is a {task.name} model")
    return SCORERS[task.name]


# -- statistics -----------------------------------------------------------------------------------------


def cells(entries: list[tuple[int, int, float]], rows: int, cols: int) -> np.ndarray:
    """(template, column, value) entries as a rows x cols matrix of means (NaN where none)."""
    total, count = np.zeros((rows, cols)), np.zeros((rows, cols))
    for r, c, v in entries:
        total[r, c] += v
        count[r, c] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def cell_mean(matrix: np.ndarray) -> float:
    """Each (template, word) cell counts once, however many fillings of the other slots it holds."""
    return float(np.nanmean(matrix)) if np.isfinite(matrix).any() else float("nan")


def resampled_means(matrix: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Means of ``matrix`` over the bootstrap's template draws ``rows`` (B x T) and fresh column draws."""
    if rows.size == 0:
        return np.empty(0)
    if np.isfinite(matrix).sum() < 2:  # one template, one word: resampling cannot show any spread
        return np.full(rows.shape[0], np.nan)
    cols = rng.integers(matrix.shape[1], size=(rows.shape[0], matrix.shape[1]))
    sample = matrix[rows[:, :, None], cols[:, None, :]]
    present = np.isfinite(sample)
    with np.errstate(invalid="ignore"):
        return np.where(present, sample, 0).sum(axis=(1, 2)) / present.sum(axis=(1, 2))


def interval(draws: np.ndarray) -> tuple[float | None, float | None]:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None, None
    low, high = np.percentile(finite, [2.5, 97.5])
    return round(float(low), 6), round(float(high), 6)


def stat(point: float, draws: np.ndarray) -> dict[str, float | None]:
    """A mean (None where nothing was measured: groups no template fills together) and its interval."""
    low, high = interval(draws)
    return {"mean": round(point, 6) if np.isfinite(point) else None, "low": low, "high": high}


@dataclass
class SlotView:
    """The fillings of the templates that have one slot, indexed for the statistics of that slot."""

    slot: str
    rows: dict[int, int]  # template position -> row of the cell matrices
    groups: dict[str, int]  # group -> its number of words, in word-list order
    members: list[int]  # the fillings that have the slot
    others: dict[
        tuple, dict[tuple[str, int], int]
    ]  # (template, other slots' choices) -> (group, i) -> filling


def slot_view(slot: str, fillings: Sequence[Filling]) -> SlotView:
    rows: dict[int, int] = {}
    groups: dict[str, int] = {}
    members, others = [], defaultdict(dict)
    for n, f in enumerate(fillings):
        if slot not in f.choices:
            continue
        choice = f.choices[slot]
        rows.setdefault(f.template, len(rows))
        groups[choice.group] = max(groups.get(choice.group, 0), choice.index + 1)
        members.append(n)
        rest = tuple((s, c.group, c.index) for s, c in sorted(f.choices.items()) if s != slot)
        others[(f.template, rest)][(choice.group, choice.index)] = n
    return SlotView(slot, rows, groups, members, dict(others))


def word_pairs(size_a: int, size_b: int, pairing: str) -> list[tuple[int, int]]:
    """The counterfactual pairs of two groups' words: same position (index), or every pair (all)."""
    if pairing == "index":
        if size_a != size_b:
            log.warning("groups of %d and %d words: index pairs stop at the shorter", size_a, size_b)
        return [(i, i) for i in range(min(size_a, size_b))]
    return list(itertools.product(range(size_a), range(size_b)))


def group_stats(
    view: SlotView,
    fillings: Sequence[Filling],
    scores: Sequence[dict[str, Score]],
    measures: list[str],
    boot_rows: np.ndarray,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per group: fillings, words and each measure's mean with its interval; and the bootstrap draws of
    the main (first) measure, for the gaps."""
    out, draws = {}, {}
    for group, size in view.groups.items():
        mine = [n for n in view.members if fillings[n].choices[view.slot].group == group]
        entry: dict[str, Any] = {"n": len(mine), "words": size, "measures": {}}
        for k, measure in enumerate(measures):
            matrix = cells(
                [
                    (
                        view.rows[fillings[n].template],
                        fillings[n].choices[view.slot].index,
                        scores[n][view.slot].values[measure],
                    )
                    for n in mine
                ],
                len(view.rows),
                size,
            )
            boot = resampled_means(matrix, boot_rows, rng)
            entry["measures"][measure] = stat(cell_mean(matrix), boot)
            if k == 0:
                draws[group] = boot
        out[group] = entry
    return out, draws


def group_gaps(groups: dict[str, Any], draws: dict[str, np.ndarray], main: str) -> list[dict[str, Any]]:
    """Mean of group a minus mean of group b for every pair, the largest first; both means come from the
    same template draws, so the interval of the gap is paired over templates."""
    gaps = []
    for a, b in itertools.combinations(groups, 2):
        point = groups[a]["measures"][main]["mean"] - groups[b]["measures"][main]["mean"]
        low, high = interval(draws[a] - draws[b])
        gaps.append({"a": a, "b": b, "gap": round(point, 6), "low": low, "high": high})
    return sorted(gaps, key=lambda g: -abs(g["gap"]))


def flip_rates(
    view: SlotView,
    scores: Sequence[dict[str, Score]],
    main: str,
    options: ProbeOptions,
    boot_rows: np.ndarray,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Per pair of groups: how many counterfactual pairs there are, and the share whose outcome differs
    (mean over templates and word pairs, each counting once), with the mean |change| of the measure."""
    fillings_of = list(view.others.items())
    flips = []
    for a, b in itertools.combinations(view.groups, 2):
        pairs = word_pairs(view.groups[a], view.groups[b], options.pairing)
        flipped, changes = [], []
        for (template, _), members in fillings_of:
            for p, (i, j) in enumerate(pairs):
                if (a, i) in members and (b, j) in members:
                    x, y = scores[members[(a, i)]][view.slot], scores[members[(b, j)]][view.slot]
                    flipped.append((view.rows[template], p, float(x.outcome != y.outcome)))
                    changes.append(abs(x.values[main] - y.values[main]))
        matrix = cells(flipped, len(view.rows), max(len(pairs), 1))
        rate = stat(cell_mean(matrix), resampled_means(matrix, boot_rows, rng))
        flips.append(
            {
                "a": a,
                "b": b,
                "pairs": len(flipped),
                "flips": int(sum(f for _, _, f in flipped)),
                "rate": rate["mean"],
                "low": rate["low"],
                "high": rate["high"],
                "mean_abs_change": round(float(np.mean(changes)), 6) if changes else None,
            }
        )
    return flips


def summarise_slot(
    slot: str,
    fillings: Sequence[Filling],
    scores: Sequence[dict[str, Score]],
    measures: list[str],
    options: ProbeOptions,
    rng: np.random.Generator,
) -> dict[str, Any]:
    view = slot_view(slot, fillings)
    # every statistic of the slot resamples the same templates: gaps and flips are paired over them
    boot_rows = rng.integers(len(view.rows), size=(options.n_boot, len(view.rows)))
    groups, draws = group_stats(view, fillings, scores, measures, boot_rows, rng)
    return {
        "templates": len(view.rows),
        "fillings": len(view.members),
        "groups": groups,
        "gaps": group_gaps(groups, draws, measures[0]),
        "flips": flip_rates(view, scores, measures[0], options, boot_rows, rng),
    }


def largest_gaps(slots: dict[str, Any], top: int) -> list[dict[str, Any]]:
    """The ``top`` largest gaps over all slots, each with its pair's flip rate."""
    rows = []
    for slot, summary in slots.items():
        flips = {(f["a"], f["b"]): f["rate"] for f in summary["flips"]}
        rows += [{"slot": slot, **g, "flip_rate": flips[(g["a"], g["b"])]} for g in summary["gaps"]]
    return sorted(rows, key=lambda g: -abs(g["gap"]))[:top]


# -- the probe ------------------------------------------------------------------------------------------


@dataclass
class ProbeRun:
    """Everything one probe produced: the fillings, the model's results, their scores and the summary."""

    templates: list[Template]
    fillings: list[Filling]
    results: list[Any]
    scores: list[dict[str, Score]]
    summary: dict[str, Any]


def predict_all(predictor: Any, texts: Sequence[str], chunk: int) -> list[Any]:
    """``predictor.predict`` over the texts, ``chunk`` at a time, saying how far it is."""
    results: list[Any] = []
    for start in range(0, len(texts), chunk):
        results += predictor.predict(list(texts[start : start + chunk]))
        log.info("probe: predicted %d of %d fillings", len(results), len(texts))
    return results


def run_probe(
    predictor: Any, templates: list[Template], words: dict, options: ProbeOptions | None = None
) -> ProbeRun:
    """Fill every template every way, predict every filling and compare the groups of each slot.

    ``predictor`` is a ``Predictor`` or anything with its ``task`` (``name``, ``labels``) and
    ``predict(texts)`` returning classify's or ner's result objects.
    """
    options = options or ProbeOptions()
    if options.pairing not in PAIRINGS:
        raise BertkitError(f"pairing must be one of {PAIRINGS}, got {options.pairing!r}")
    build = scorer_for(predictor.task)  # refuses another family before predicting anything
    fillings = expand(templates, words)
    results = predict_all(predictor, [f.text for f in fillings], options.chunk)
    scorer = build(predictor.task, results, options)
    scores = [
        {slot: scorer.score(templates[f.template], f, slot, r) for slot in f.choices}
        for f, r in zip(fillings, results)
    ]
    rng = np.random.default_rng(options.seed)
    slots = dict.fromkeys(s for t in templates for s in t.slots)
    summary_slots = {
        slot: summarise_slot(slot, fillings, scores, scorer.measures(), options, rng) for slot in slots
    }
    if isinstance(scorer, NerScorer):
        for slot, summary in summary_slots.items():
            summary["expected_entity"] = sorted(scorer.expected_seen[slot], key=str)
    summary = {
        "task": predictor.task.name,
        **scorer.describe(),
        "pairing": options.pairing,
        "bootstrap": options.n_boot,
        "seed": options.seed,
        "templates": len(templates),
        "fillings": len(fillings),
        "slots": summary_slots,
        "largest_gaps": largest_gaps(summary_slots, options.top),
    }
    return ProbeRun(templates, fillings, results, scores, summary)


def filling_row(template: Template, filling: Filling, result: Any, scores: dict[str, Score]) -> dict:
    return {
        "template": template.id,
        "text": filling.text,
        "slots": {
            s: {"group": c.group, "index": c.index, "word": c.word, "span": list(filling.spans[s][0])}
            for s, c in filling.choices.items()
        },
        "prediction": result.to_dict(),
        "scores": {s: score.values for s, score in scores.items()},
    }


def write_probe(run: ProbeRun, out_dir: str | Path, about: dict[str, Any] | None = None) -> Path:
    """``probe.json``, ``probe.md``, ``probe.png`` and ``fillings.jsonl`` in ``out_dir``, each written
    atomically; ``about`` (model, templates, words) heads the summary."""
    out = Path(out_dir)
    if out.is_file():
        raise BertkitError(f"--out {out} is a file; it takes a directory")
    out.mkdir(parents=True, exist_ok=True)
    summary = {**(about or {}), **run.summary}
    with atomic_path(out / "fillings.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for filling, result, scores in zip(run.fillings, run.results, run.scores):
            row = filling_row(run.templates[filling.template], filling, result, scores)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_json(out / "probe.json", summary)
    write_text(out / "probe.md", probe_markdown(summary))
    plot_probe(summary, out / "probe.png")
    return out
