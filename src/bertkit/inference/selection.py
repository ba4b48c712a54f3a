"""Which unlabelled records to label next (``bertkit select``): the model's uncertainty about each record,
a batch made diverse among the most uncertain, and the chosen records written in the task's input format.

Families differ in what a record's distribution is (one class distribution; one per word) and in how
a record is written: the two supported ones are dispatched through ``DISTRIBUTIONS`` and ``WRITERS``,
dicts keyed by task name (no family is imported: the family's own decoder gives the class probabilities,
and the NER windows' ``slots`` say which position holds each word).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bertkit.atomic import write_text
from bertkit.data.batching import inference_batches
from bertkit.data.readers import detect_token_format
from bertkit.data.readers.tabular import detect_delimiter
from bertkit.errors import BertkitError
from bertkit.tasks.base import Batch, WindowDecoder
from bertkit.training.runtime import Runtime, eval_mode, to_device

log = logging.getLogger(__name__)

STRATEGIES = ("entropy", "margin", "random")
AGGREGATES = ("max", "mean")
POOL_FACTOR = 3  # diversity picks the batch among the POOL_FACTOR * budget most uncertain records


# -- uncertainty of distributions (last axis: the classes) --------------------------------------------


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats over the last axis (0 log 0 counts as 0)."""
    p = np.asarray(probs, dtype=np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 - (p1 - p2), the gap between the two likeliest classes turned into an uncertainty in [0, 1]."""
    top = -np.sort(-np.asarray(probs, dtype=np.float64), axis=-1)
    second = top[..., 1] if top.shape[-1] > 1 else 0.0
    return 1.0 - (top[..., 0] - second)


MEASURES = {"entropy": entropy, "margin": margin}


def record_uncertainty(probs: np.ndarray, strategy: str, aggregate: str = "max") -> float:
    """The uncertainty of one record: of its class distribution (shape ``[classes]``), or of its words'
    distributions (shape ``[words, classes]``) aggregated by ``max`` or ``mean`` (0 for no words).

    ``max`` is the default for words: a sentence is worth labelling when any word of it is unclear, and
    in NER most words are confident ``O``s, so a mean dilutes one hard entity in a long sentence.
    """
    values = MEASURES[strategy](probs)
    if np.ndim(values) == 0:
        return float(values)
    if len(values) == 0:
        return 0.0
    return float(values.max() if aggregate == "max" else values.mean())


# -- the model's distributions and embeddings ----------------------------------------------------------


class ClassProbabilities:
    """A classification decoder whose predictions are the class probabilities, in label order."""

    def __init__(self, task: Any, records: Sequence[Any], features: Sequence[Any]):
        if getattr(task, "mode", "single") != "single":
            raise BertkitError(f"select ranks single-label classifiers; this model is {task.mode}")
        self.labels = task.labels
        self.inner = task.decoder(records, features)

    def add(self, outputs: Any, batch: Batch) -> None:
        self.inner.add(outputs, batch)

    def predictions(self) -> list[np.ndarray]:
        return [np.array([p.probs[lab] for lab in self.labels]) for p in self.inner.predictions()]


class WordProbabilities(WindowDecoder):
    """Per-word distributions of a token-tagging task (NER): each word's row is the softmax at its first
    sub-word in the one window that owns it (the features' ``slots``, as the NER decoder reads them)."""

    def __init__(self, task: Any, records: Sequence[Any], features: Sequence[Any]):
        self.n_labels = len(task.labels)
        self.word_counts = [len(r) for r in records]
        self.rows: dict[int, np.ndarray] = {}
        super().__init__(Counter(f.record for f in features), len(records))

    def window_outputs(self, outputs: Any, batch: Batch) -> list[list[tuple[int, np.ndarray]]]:
        probs = torch.softmax(outputs.logits.float(), dim=-1)
        rows = [b for b, slots in enumerate(batch["slots"]) for _ in slots]
        cols = [pos for slots in batch["slots"] for pos, _ in slots]
        picked = probs[rows, cols].cpu().numpy() if rows else np.zeros((0, self.n_labels))
        out, k = [], 0
        for slots in batch["slots"]:
            out.append([(word, picked[k + i]) for i, (_, word) in enumerate(slots)])
            k += len(slots)
        return out

    def collect(self, record: int, payload: list[tuple[int, np.ndarray]]) -> None:
        table = self.rows.setdefault(record, np.zeros((self.word_counts[record], self.n_labels)))
        for word, row in payload:
            table[word] = row

    def finish(self, record: int) -> np.ndarray:
        return self.rows.pop(record, self.empty(record))

    def empty(self, record: int) -> np.ndarray:
        return np.zeros((0, self.n_labels))


DISTRIBUTIONS: dict[str, Callable[[Any, Sequence[Any], Sequence[Any]], Any]] = {
    "classify": ClassProbabilities,
    "ner": WordProbabilities,
}


@dataclass
class Distributions:
    """Per record: its probabilities, and the mean-pooled last hidden state (unit length)."""

    probs: list[np.ndarray]
    embeddings: np.ndarray


def require_family(task_name: str) -> None:
    if task_name not in DISTRIBUTIONS:
        raise BertkitError(
            f"select supports {', '.join(DISTRIBUTIONS)} models; this model is a {task_name!r} model"
        )


def model_distributions(
    model: torch.nn.Module, task: Any, records: Sequence[Any], runtime: Runtime, batch_size: int = 64
) -> Distributions:
    """Run ``task.forward`` over the windows of ``records`` batch by batch; windows go back to records."""
    require_family(task.name)
    features = task.encode(records)
    decoder = DISTRIBUTIONS[task.name](task, records, features)
    hidden = HiddenMeans(len(records))
    captured: dict[str, torch.Tensor] = {}
    # the encoder's output is caught on its way to the head, so task.forward stays the one way to call
    handle = model.base_model.register_forward_hook(lambda m, i, out: captured.update(h=out[0]))
    try:
        with eval_mode(model), runtime.autocast():
            for idx in inference_batches(features, batch_size):
                batch = to_device(task.collate([features[i] for i in idx]), runtime.device)
                decoder.add(task.forward(model, batch), batch)
                hidden.add(captured["h"], batch)
    finally:
        handle.remove()
    return Distributions(decoder.predictions(), hidden.means())


class HiddenMeans:
    """Sums of the mean-pooled window states per record, turned into unit vectors at the end."""

    def __init__(self, n_records: int):
        self.sums: np.ndarray | None = None
        self.counts = np.zeros(n_records)

    def add(self, states: torch.Tensor, batch: Batch) -> None:
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = ((states * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy()
        if self.sums is None:
            self.sums = np.zeros((len(self.counts), pooled.shape[1]))
        for row, record in zip(pooled, batch["record"]):
            self.sums[record] += row
            self.counts[record] += 1

    def means(self) -> np.ndarray:
        if self.sums is None:
            return np.zeros((len(self.counts), 1))
        means = self.sums / np.maximum(self.counts, 1)[:, None]
        return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


# -- choosing the batch --------------------------------------------------------------------------------


def record_key(record: Any) -> str:
    """What makes two records the same text to a labeller: case and spacing aside."""
    tokens = getattr(record, "tokens", None)
    text = " ".join(tokens) if tokens is not None else f"{record.text}\t{getattr(record, 'pair', None) or ''}"
    return " ".join(text.lower().split())


def drop_duplicates(order: Sequence[int], keys: Sequence[str]) -> list[int]:
    """``order`` keeping only the first record of each key."""
    seen: set[str] = set()
    out = []
    for i in order:
        if keys[i] not in seen:
            seen.add(keys[i])
            out.append(i)
    return out


def k_center(candidates: Sequence[int], embeddings: np.ndarray, budget: int) -> list[int]:
    """Greedy max-min: start from the first (most uncertain) candidate, then repeatedly take the one
    farthest (cosine distance) from everything taken; ties go to the earlier, more uncertain one."""
    if budget <= 0 or not candidates:
        return []
    vectors = embeddings[list(candidates)]
    chosen = [0]
    nearest = 1.0 - vectors @ vectors[0]
    nearest[0] = -np.inf
    while len(chosen) < min(budget, len(candidates)):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, 1.0 - vectors @ vectors[pick])
        nearest[chosen] = -np.inf
    return [candidates[c] for c in chosen]


def choose(
    scores: np.ndarray,
    budget: int,
    *,
    keys: Sequence[str] | None = None,
    embeddings: np.ndarray | None = None,
    diverse: bool = True,
    pool_factor: int = POOL_FACTOR,
) -> list[int]:
    """Indices of the ``budget`` records to label, most uncertain first.

    Without diversity: the top ``budget`` scores. With it: exact duplicates (``keys``) are dropped, and a
    greedy k-center batch is taken among the ``pool_factor * budget`` most uncertain, so one cluster of
    near-identical unclear texts does not fill the whole batch.
    """
    order = [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")]
    if not diverse:
        return order[:budget]
    if keys is not None:
        order = drop_duplicates(order, keys)
    pool = order[: max(budget, pool_factor * budget)]
    picked = k_center(pool, embeddings, budget) if embeddings is not None else pool[:budget]
    rank = {i: r for r, i in enumerate(order)}
    return sorted(picked, key=rank.__getitem__)


def random_choice(n: int, budget: int, seed: int, keys: Sequence[str] | None = None) -> list[int]:
    """The baseline: a seeded uniform sample (without repeating a text when ``keys`` are given)."""
    order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    return (drop_duplicates(order, keys) if keys is not None else order)[:budget]


@dataclass
class Selection:
    """The records chosen, in the order written, with their uncertainty (None for random)."""

    indices: list[int]
    scores: list[float | None]


def select_records(
    model: torch.nn.Module,
    task: Any,
    records: Sequence[Any],
    runtime: Runtime,
    budget: int,
    strategy: str = "entropy",
    *,
    seed: int = 0,
    diverse: bool = True,
    aggregate: str = "max",
    batch_size: int = 64,
) -> Selection:
    """The ``budget`` records of ``records`` to label next, by ``strategy`` (see ``STRATEGIES``)."""
    require_family(task.name)
    if strategy not in STRATEGIES:
        raise BertkitError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if aggregate not in AGGREGATES:
        raise BertkitError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if budget < 1:
        raise BertkitError(f"--budget must be at least 1, got {budget}")
    keys = [record_key(r) for r in records] if diverse else None
    available = len(set(keys)) if keys is not None else len(records)
    if budget > available:
        log.warning(
            "--budget %d is more than the %d distinct records to choose from: taking all", budget, available
        )
        budget = available
    if strategy == "random":
        return Selection(random_choice(len(records), budget, seed, keys), [None] * budget)
    dist = model_distributions(model, task, records, runtime, batch_size)
    scores = np.array([record_uncertainty(p, strategy, aggregate) for p in dist.probs])
    picked = choose(scores, budget, keys=keys, embeddings=dist.embeddings, diverse=diverse)
    return Selection(picked, [float(scores[i]) for i in picked])


# -- writing the chosen records ------------------------------------------------------------------------


def write_sentences(task: Any, records: Sequence[Any], src: str, out: str) -> None:
    """NER: JSON lines of tokens with ``O`` tags when the input was JSON lines, else CoNLL (token TAB O)."""
    fmt = task.data_cfg.format if task.data_cfg.format != "auto" else detect_token_format(src)
    if fmt == "jsonl":
        lines = [
            json.dumps({"tokens": r.tokens, "tags": ["O"] * len(r)}, ensure_ascii=False) for r in records
        ]
        write_text(out, "".join(line + "\n" for line in lines))
        return
    write_text(out, "".join("".join(f"{t}\tO\n" for t in r.tokens) + "\n" for r in records))


def column_name(spec: Any, default: str) -> str:
    """A column as the output's header names it: its name, or ``default`` for a 0-based index."""
    return default if spec is None or str(spec).isdigit() else str(spec)


def write_texts(task: Any, records: Sequence[Any], src: str, out: str) -> None:
    """Classification: the text (and pair) columns the model reads, in the input's TSV/CSV/JSON-lines
    form, with a header; the label column is left for the labeller to add, so the file reads back
    unlabelled as it is (an empty label cell is a bad line to the reader)."""
    columns = [column_name(task.cfg.text_column, "text")]
    if task.cfg.pair_column is not None:
        columns.append(column_name(task.cfg.pair_column, "pair"))
    rows = [[r.text, r.pair][: len(columns)] for r in records]
    if src.endswith(".txt"):  # one text per line, as the reader takes plain texts
        write_text(out, "".join(row[0] + "\n" for row in rows))
        return
    delimiter = detect_delimiter(src)
    if delimiter is None:
        lines = [json.dumps(dict(zip(columns, row)), ensure_ascii=False) for row in rows]
        write_text(out, "".join(line + "\n" for line in lines))
        return
    if delimiter == "\t":  # TSVs are read without quoting: write them the same way
        write_text(out, "".join("\t".join(row) + "\n" for row in [columns, *rows]))
        return
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows([columns, *rows])
    write_text(out, buffer.getvalue())


WRITERS: dict[str, Callable[[Any, Sequence[Any], str, str], None]] = {
    "classify": write_texts,
    "ner": write_sentences,
}


def write_selection(task: Any, records: Sequence[Any], selection: Selection, src: str, out: str) -> str:
    """The chosen records into ``out`` in the task's input format, and ``OUT.scores.jsonl`` beside it
    (rank, input line, index in the input, score); returns the sidecar's path."""
    chosen = [records[i] for i in selection.indices]
    WRITERS[task.name](task, chosen, src, out)
    sidecar = f"{out}.scores.jsonl"
    rows = [
        {"rank": rank, "line": getattr(r, "line", None), "index": i, "score": score}
        for rank, (i, r, score) in enumerate(zip(selection.indices, chosen, selection.scores), 1)
    ]
    write_text(sidecar, "".join(json.dumps(row) + "\n" for row in rows))
    return sidecar
