"""Sequence classification: single-label, text-pair, multi-label and regression.

Texts longer than the window are never cut: they are split into overlapping windows, each window is
scored, and the window logits are pooled (mean or max) into one prediction per example. Multi-label
thresholds are tuned per label on dev after training.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from bertkit.config import DataConfig, ModelConfig, option
from bertkit.data.padding import pad, padding_mask
from bertkit.data.readers import read_lines
from bertkit.data.readers.tabular import read_table
from bertkit.data.windows import Template, window_starts
from bertkit.errors import BertkitError
from bertkit.modeling.embeddings import input_embeddings
from bertkit.modeling.first_token import first_token_top_layer
from bertkit.modeling.load import load_model
from bertkit.records import TextExample
from bertkit.tasks.base import Batch, TaskBase, short
from bertkit.tasks.classify.augment import EmbeddingSynonyms, augment_examples, content_words
from bertkit.tasks.classify.metrics import (
    classification_scores,
    majority_baseline,
    multilabel_scores,
    regression_scores,
    tune_thresholds,
)
from bertkit.tasks.classify.pooling import PooledDecoder

log = logging.getLogger(__name__)

MAIN_METRIC = {"single": "accuracy", "multi": "micro_f1", "regression": "pearson"}
LOWER_IS_BETTER = ("mse", "mae")


@dataclass
class ClassifyConfig:
    text_column: str = option(
        "text", "column with the text: a header name or a 0-based index", "--text-column"
    )
    pair_column: str | None = option(None, "column with the second text of a pair", "--pair-column")
    label_column: str = option("label", "column with the label(s)", "--label-column")
    header: str = option(
        "auto",
        "header row: auto (yes when a column is named), yes, no",
        "--header",
        choices=("auto", "yes", "no"),
    )
    multi_label: bool = option(
        False, "several labels per text (sigmoid + BCE, tuned thresholds)", "--multi-label"
    )
    regression: bool = option(False, "a number per text (MSE; Pearson/Spearman)", "--regression")
    label_delimiter: str = option(",", "separator of the labels of a multi-label cell")
    labels: list[str] | None = option(
        None, "fixed label set, comma-separated (default: from train)", "--labels"
    )
    class_weights: str = option(
        "none", "weight the loss of rare classes up", "--class-weights", choices=("none", "balanced")
    )
    pooling: str = option(
        "mean", "how the windows of a long text are combined", "--pooling", choices=("mean", "max")
    )
    metric: str | None = option(
        None, "dev metric that picks the best model (default: accuracy, micro_f1 or pearson by mode)"
    )
    thresholds: list[float] | None = option(None, "per-label decision thresholds (multi-label; tuned on dev)")
    first_token_top: bool = option(
        True,
        "in training, the top encoder layer computes [CLS] alone, all the head reads (BERT, RoBERTa, "
        "ELECTRA heads; the same output, a sixth of MiniLM's encoder work saved); off: every position",
    )
    augment: bool = option(
        False, "add EDA-augmented copies of the training texts (see bertkit/augment.py)", "--augment"
    )
    augment_n: int = option(4, "augmented copies per training text (with --augment)", "--augment-n")
    augment_alpha: float = option(
        0.1, "share of the words each augmentation changes (with --augment)", "--augment-alpha"
    )


@dataclass
class TextFeature:
    """One window of one example: ids, token types and the example's label."""

    input_ids: list[int]
    token_type_ids: list[int]
    record: int
    target: Any  # class id, multi-hot list, or float


@dataclass
class ClassPrediction:
    """Pooled prediction of one example: label(s) or value, with the probability of every class."""

    label: str | list[str] | float
    probs: dict[str, float]


@dataclass
class ClassResult:
    """The prediction for one input: the label (single), labels (multi-label) or value (regression),
    with every class's probability, and the text (and pair) it is about."""

    label: str | list[str] | float
    probs: dict[str, float]
    mode: str
    text: str
    pair: str | None = None

    def to_dict(self) -> dict[str, Any]:
        texts = {"text": self.text} if self.pair is None else {"text": self.text, "pair": self.pair}
        key = {"single": "label", "multi": "labels", "regression": "value"}[self.mode]
        out: dict[str, Any] = {**texts, key: self.label}
        if self.probs:
            out["probs"] = {lab: round(p, 6) for lab, p in self.probs.items()}
        return out


class ClassifyTask(TaskBase):
    """Text classification: single label, text pair, multi-label or regression."""

    name = "classify"
    config_class = ClassifyConfig
    model_class = AutoModelForSequenceClassification
    record_class = TextExample
    predict_io = (
        "TSV/CSV with the training columns, JSON lines, or .txt with one text per line "
        "(JSON lines of labels and probabilities)"
    )
    input_names = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(
        self,
        cfg: ClassifyConfig,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        if cfg.multi_label and cfg.regression:
            raise BertkitError("--multi-label and --regression exclude each other")
        super().__init__(cfg, model_cfg, data_cfg, tokenizer, labels)
        self.template = Template.of(tokenizer)
        if model_cfg.max_length - self.template.pair_overhead < 2:
            raise BertkitError(f"max_length {model_cfg.max_length} leaves no room for text")
        self.class_weights: torch.Tensor | None = None
        self.stride = model_cfg.stride

    @property
    def mode(self) -> str:
        return "multi" if self.cfg.multi_label else "regression" if self.cfg.regression else "single"

    @property
    def needs_calibration(self) -> bool:
        return self.mode == "multi"

    @property
    def main_metric(self) -> str:
        return self.cfg.metric or MAIN_METRIC[self.mode]

    @property
    def greater_is_better(self) -> bool:
        return self.main_metric not in LOWER_IS_BETTER

    def read(self, path: str, *, labelled: bool = True) -> list[TextExample]:
        if not labelled and Path(path).suffix == ".txt":
            lines = read_lines(path)
            if not any("\t" in line for line in lines):  # plain texts to predict, one per line
                return [TextExample(text=line, path=path, line=n) for n, line in enumerate(lines, 1)]
            # else a TSV named .txt (MRPC's msr_paraphrase_*.txt), read as the table it is
        header = {"auto": "auto", "yes": True, "no": False}[self.cfg.header]
        return read_table(
            path,
            text_column=self.cfg.text_column,
            pair_column=self.cfg.pair_column,
            # prediction input: a label column, when there is one, is neither needed nor checked (a
            # test file's "-" or empty placeholders are no error)
            label_column=self.cfg.label_column if labelled else None,
            header=header,
            label_mode=self.mode,
            label_delimiter=self.cfg.label_delimiter,
            labels=None if self.mode == "regression" else (self.labels or self.cfg.labels),
            on_bad_line=self.data_cfg.on_bad_line,
            require_labels=labelled,
        )

    def setup(self, train: Sequence[TextExample]) -> None:
        """Label set from train (or fixed), and class weights when asked for."""
        if self.mode == "regression":
            self.labels = ["value"]
            return
        if self.cfg.labels:
            self.labels = list(self.cfg.labels)
        else:
            seen = Counter(lab for r in train for lab in as_list(r.label))
            self.labels = sorted(seen)
        if len(self.labels) < (1 if self.mode == "multi" else 2):
            raise BertkitError(f"training data has {len(self.labels)} label(s): {self.labels}; need more")
        log.info("%d labels: %s", len(self.labels), ", ".join(self.labels[:20]))
        if self.cfg.class_weights == "balanced":
            self.class_weights = balanced_weights(train, self.labels, self.mode)

    def prepare_train(self, train: list[TextExample], seed: int) -> list[TextExample]:
        """With ``--augment``: train plus EDA copies, synonyms from the pretrained input embeddings."""
        if not self.cfg.augment:
            return train
        words = content_words(train)
        synonyms = EmbeddingSynonyms.from_embeddings(input_embeddings(self.model_cfg), self.tokenizer, words)
        log.info(
            "synonyms for %s of %s distinct words of the training texts",
            f"{len(synonyms.table):,}",
            f"{len(words):,}",
        )
        augmented = augment_examples(
            train, synonyms, n_aug=self.cfg.augment_n, alpha=self.cfg.augment_alpha, seed=seed
        )
        log.info(
            "augmented %s training texts into %s (n_aug=%d, alpha=%g)",
            f"{len(train):,}",
            f"{len(augmented):,}",
            self.cfg.augment_n,
            self.cfg.augment_alpha,
        )
        return augmented

    # -- records -> features ------------------------------------------------------------------------

    def encode(self, records: Sequence[TextExample]) -> list[TextFeature]:
        """Windows of every text (pair); pure (no logging, no state): prediction calls it per request."""
        texts = self.subwords([r.text for r in records])
        pairs: list = [None] * len(records)
        if self.cfg.pair_column:
            pairs = self.subwords([r.pair or "" for r in records])
        features: list[TextFeature] = []
        for r, (record, a, b) in enumerate(zip(records, texts, pairs)):
            target = self.target(record)
            features += [TextFeature(*self.template.build(x, y), r, target) for x, y in self.windows(a, b)]
        return features

    def subwords(self, texts: list[str]) -> list[list[int]]:
        # verbose=False: transformers warns about texts longer than the model, which windows handle
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def describe_encoding(
        self, records: Sequence[TextExample], features: Sequence[TextFeature], split: str
    ) -> None:
        super().describe_encoding(records, features, split)
        windowed = sum(n > 1 for n in Counter(f.record for f in features).values())
        log.info("%s: %d examples longer than one window, split into windows, none cut", split, windowed)

    def windows(self, a: list[int], b: list[int] | None) -> list[tuple[list[int], list[int] | None]]:
        """Windows over one text, or over a pair: every sub-word of both texts lands in some window."""
        if b is None:
            return [
                (w, None) for w in self.split(a, self.model_cfg.max_length - self.template.single_overhead)
            ]
        total = self.model_cfg.max_length - self.template.pair_overhead
        if len(a) + len(b) <= total:
            return [(a, b)]
        # the shorter text stays whole when it fits in half the room; otherwise both are windowed
        size_b = len(b) if len(b) <= total // 2 else total - min(len(a), total // 2)
        wins_a = self.split(a, total - min(size_b, len(b)))
        wins_b = self.split(b, size_b)
        n = max(len(wins_a), len(wins_b))
        return [(wins_a[min(i, len(wins_a) - 1)], wins_b[min(i, len(wins_b) - 1)]) for i in range(n)]

    def split(self, ids: list[int], size: int) -> list[list[int]]:
        """``ids`` as overlapping windows of at most ``size`` (one window, maybe empty, when it fits)."""
        if len(ids) <= size:
            return [ids]
        starts = window_starts(len(ids), size, min(self.stride, size // 2))
        return [ids[s : s + size] for s in starts]

    def target(self, record: TextExample) -> Any:
        if record.label is None:
            return None
        if self.mode == "regression":
            return float(record.label)
        index = {label: i for i, label in enumerate(self.labels or [])}
        if self.mode == "multi":
            hot = [0.0] * len(index)
            for lab in as_list(record.label):
                hot[index[lab]] = 1.0
            return hot
        return index[record.label]

    def collate(self, features: Sequence[TextFeature]) -> Batch:
        ids = [f.input_ids for f in features]
        length = self.batch_length(ids)
        batch = {
            "input_ids": pad(ids, self.tokenizer.pad_token_id or 0, length=length),
            "token_type_ids": pad([f.token_type_ids for f in features], 0, length=length),
            "attention_mask": padding_mask(ids, length),
            "record": [f.record for f in features],
        }
        if all(f.target is not None for f in features):
            dtype = torch.long if self.mode == "single" else torch.float32
            batch["labels"] = torch.tensor([f.target for f in features], dtype=dtype)
        return batch

    # -- model ---------------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        problem = {
            "single": "single_label_classification",
            "multi": "multi_label_classification",
            "regression": "regression",
        }[self.mode]
        return load_model(
            AutoModelForSequenceClassification,
            self.model_cfg,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={lab: i for i, lab in enumerate(self.labels)},
            problem_type=problem,
        )

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any:
        top = first_token_top_layer(model) if self.cfg.first_token_top else contextlib.nullcontext()
        head = head_in_fp32(model) if self.mode == "regression" else contextlib.nullcontext()
        with top, head:
            return super().forward(model, batch)

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        logits, labels = outputs.logits.float(), batch["labels"]
        if self.mode == "regression":
            return F.mse_loss(logits.squeeze(-1), labels)
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.mode == "multi":
            return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weights)
        return F.cross_entropy(logits, labels, weight=weights)

    # -- features -> predictions ---------------------------------------------------------------------

    def decoder(self, records: Sequence[TextExample], features: Sequence[TextFeature]) -> PooledDecoder:
        windows = Counter(f.record for f in features)
        return PooledDecoder(windows, len(records), self.cfg.pooling, self.predict_from_logits)

    def predict_from_logits(self, logits: np.ndarray) -> ClassPrediction:
        """The prediction of one example from its pooled logits."""
        labels = self.labels or []
        if self.mode == "regression":
            return ClassPrediction(float(logits[0]), {})
        if self.mode == "multi":
            probs = 1.0 / (1.0 + np.exp(-logits))
            cut = self.cfg.thresholds or [0.5] * len(labels)
            chosen = [lab for lab, p, t in zip(labels, probs, cut) if p >= t]
            return ClassPrediction(chosen, {lab: float(p) for lab, p in zip(labels, probs)})
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return ClassPrediction(labels[int(probs.argmax())], {lab: float(p) for lab, p in zip(labels, probs)})

    def metrics(self, predictions: list[ClassPrediction], records: Sequence[TextExample]) -> dict:
        if any(r.label is None for r in records):
            raise BertkitError(f"{records[0].path}: the file has no labels to evaluate against")
        gold = [r.label for r in records]
        pred = [p.label for p in predictions]
        if self.mode == "regression":
            return regression_scores([float(g) for g in gold], [float(p) for p in pred])
        if self.mode == "multi":
            return multilabel_scores([as_list(g) for g in gold], [as_list(p) for p in pred], self.labels)
        return classification_scores(gold, pred, self.labels)

    def baseline(self, train: Sequence[TextExample], records: Sequence[TextExample]) -> dict | None:
        """The majority baseline on ``records``: what a model that learned nothing but priors scores."""
        return majority_baseline([r.label for r in train], [r.label for r in records], self.mode, self.labels)

    def calibrate(self, predictions: list[ClassPrediction], records: Sequence[TextExample]) -> None:
        """Multi-label: per-label thresholds that maximise each label's F1 on dev."""
        if self.mode != "multi":
            return
        probs = np.array([[p.probs[lab] for lab in self.labels] for p in predictions])
        gold = np.array([[lab in as_list(r.label) for lab in self.labels] for r in records], dtype=float)
        self.cfg.thresholds = [round(float(t), 4) for t in tune_thresholds(probs, gold)]
        log.info("thresholds tuned on dev: %s", dict(zip(self.labels, self.cfg.thresholds)))

    # -- outputs ----------------------------------------------------------------------------------------

    def to_record(self, item: Any) -> TextExample:
        """A text, a ``(text, pair)`` tuple, a ``{"text": ..., "pair": ...}`` mapping, or a TextExample."""
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            pair = item.get("pair")
            if pair is not None and not isinstance(pair, str):
                raise BertkitError(f"'pair' must be a string, got {type(pair).__name__}")
            item = TextExample(text=item["text"], pair=pair)
        elif isinstance(item, str):
            item = TextExample(text=item)
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, str) for t in item):
            item = TextExample(text=item[0], pair=item[1])
        record = super().to_record(item)
        if self.cfg.pair_column and record.pair is None:
            raise BertkitError(
                f"this model classifies text pairs: give (text, pair), got {short(record.text)}"
            )
        if not self.cfg.pair_column and record.pair is not None:
            raise BertkitError("this model classifies single texts, not pairs")
        return record

    def result(self, record: TextExample, prediction: ClassPrediction) -> ClassResult:
        return ClassResult(prediction.label, prediction.probs, self.mode, record.text, record.pair)


@contextlib.contextmanager
def head_in_fp32(model: torch.nn.Module) -> Iterator[None]:
    """The output layer (``model.classifier``, an fp32 Linear) runs in fp32 under bf16 autocast.

    A regression value in bf16 keeps 8 bits: STS-B's scores between 4 and 5 would come in steps of 1/32,
    ties that move Spearman. The encoder stays in bf16; the head's one small matmul does not.
    """
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear) or head.weight.dtype != torch.float32:
        yield
        return

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return torch.nn.Linear.forward(head, x.float())

    head.forward = forward
    try:
        yield
    finally:
        del head.forward


def as_list(label: Any) -> list[str]:
    if label is None:
        return []
    return list(label) if isinstance(label, list) else [label]


def balanced_weights(train: Sequence[TextExample], labels: list[str], mode: str) -> torch.Tensor:
    """scikit-learn's "balanced" weights n / (k * count); for multi-label, BCE's negatives/positives."""
    counts = Counter(lab for r in train for lab in as_list(r.label))
    n = len(train)
    if mode == "multi":
        return torch.tensor([(n - counts[lab]) / max(counts[lab], 1) for lab in labels], dtype=torch.float32)
    return torch.tensor([n / (len(labels) * max(counts[lab], 1)) for lab in labels], dtype=torch.float32)
