"""Relation classification: which relation (and direction) holds between two marked entities of a text.

The head and the tail are wrapped in entity markers; with the ``entity-start`` representation the
markers are tokens added to the vocabulary and the classifier reads the hidden states at the two
opening markers (Baldini Soares et al. 2019), with ``cls`` the same marked text is read as plain text
and classified from ``[CLS]``. Each relation is one window holding both entities; scored with the
official SemEval-2010 Task 8 macro F1 (``metrics.py``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel

from bertkit.config import DataConfig, ModelConfig, option
from bertkit.data.padding import pad, padding_mask
from bertkit.data.readers import read_lines
from bertkit.data.readers.relations import (
    RelationExample,
    parse_relation,
    read_relation_jsonl,
    read_semeval,
    strip_tags,
)
from bertkit.data.windows import Template
from bertkit.errors import BertkitError
from bertkit.modeling.freeze import freeze
from bertkit.modeling.load import load_model
from bertkit.tasks.base import Batch, PredictionWriter, TaskBase, WindowDecoder, short
from bertkit.tasks.relation.markers import marker_tokens, markers_of, text_segments
from bertkit.tasks.relation.metrics import majority_label, mirrored, relation_scores
from bertkit.tasks.relation.model import CLS, ENTITY_START, REPRESENTATIONS, EncoderForRelationClassification
from bertkit.tasks.relation.window import Marked, MarkedParts, fit_window
from bertkit.tasks.relation.writer import RelationResult, SemEvalAnswerWriter

log = logging.getLogger(__name__)


@dataclass
class RelationConfig:
    representation: str = option(
        ENTITY_START,
        "entity-start: the hidden states at the two opening markers, concatenated, the markers added "
        "to the vocabulary; cls: [CLS] pooling over the same marked text, the markers left as plain "
        "text (the sequence-classification baseline)",
        "--representation",
        choices=REPRESENTATIONS,
    )
    markers: str = option(
        "plain",
        "plain: [E1] [/E1] [E2] [/E2]; typed: [E1:TYPE] ... for each entity type (JSON lines with types)",
        "--markers",
        choices=("plain", "typed"),
    )
    entity_types: list[str] | None = option(
        None, "entity types that get typed markers (default with --markers typed: the types of train)"
    )
    format: str = option(
        "auto",
        "input format: SemEval-2010 Task 8 blocks or relation JSON lines (auto: by suffix and first line)",
        choices=("auto", "semeval", "jsonl"),
    )
    negative_label: str | None = option(
        "Other", "the no-relation label, left out of the macro F1 (SemEval: Other)", "--negative-label"
    )


@dataclass
class RelationFeature:
    """The one window of one relation: ids, token types, where the two opening markers are, its label."""

    input_ids: list[int]
    token_type_ids: list[int]
    head_start: int
    tail_start: int
    record: int
    target: int | None
    trimmed: bool  # text before or after the entities left out
    shortened: bool  # entities farther apart than a window: text between them left out


@dataclass
class RelationPrediction:
    label: str
    score: float
    probs: dict[str, float]
    shortened: bool


class RelationTask(TaskBase):
    """Relation classification between two marked entities (SemEval-2010 Task 8, JSON lines)."""

    name = "re"
    main_metric = "macro_f1"
    config_class = RelationConfig
    model_class = EncoderForRelationClassification
    record_class = RelationExample
    predict_io = (
        "SemEval-2010 Task 8 or JSON lines of a text with two entity spans "
        "(JSON lines of relations and probabilities)"
    )
    input_names = ("input_ids", "attention_mask", "token_type_ids", "head_start", "tail_start")

    def __init__(
        self,
        cfg: RelationConfig,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        super().__init__(cfg, model_cfg, data_cfg, tokenizer, labels)
        self.template = Template.of(tokenizer)
        self.budget = model_cfg.max_length - self.template.single_overhead
        self.marker_cache: dict[str, list[int]] = {}

    @property
    def typed(self) -> bool:
        return self.cfg.markers == "typed"

    # -- reading ------------------------------------------------------------------------------------

    def read(self, path: str, *, labelled: bool = True) -> list[RelationExample]:
        reader = read_semeval if self.file_format(path) == "semeval" else read_relation_jsonl
        return reader(path, labelled=labelled, labels=self.labels, on_bad_line=self.data_cfg.on_bad_line)

    def file_format(self, path: str) -> str:
        """``semeval`` or ``jsonl``: as configured, else by suffix, else by the first non-blank line."""
        if self.cfg.format != "auto":
            return self.cfg.format
        if self.data_cfg.format == "jsonl" or Path(path).suffix.lower() in (".jsonl", ".json"):
            return "jsonl"
        first = next((line for line in read_lines(path) if line.strip()), "")
        return "jsonl" if first.lstrip().startswith("{") else "semeval"

    # -- training -----------------------------------------------------------------------------------

    def prepare_tokenizer(self, tokenizer: Any) -> None:
        """Add the marker tokens; ``cls`` adds none (the baseline keeps the model's own vocabulary)."""
        if self.cfg.representation == CLS:
            return
        if self.typed and self.cfg.entity_types is None:
            self.cfg.entity_types = self.types_of_train()  # fixed from now on, and written to run.yaml
        tokens = marker_tokens(self.cfg.entity_types if self.typed else ())
        added = tokenizer.add_special_tokens(
            {"extra_special_tokens": tokens}, replace_extra_special_tokens=False
        )
        self.marker_cache.clear()
        log.info("entity markers: %d added to the vocabulary (%s)", added, " ".join(tokens[:12]))

    def types_of_train(self) -> list[str]:
        if not self.data_cfg.train:
            raise BertkitError("--re.markers typed needs the entity types: pass --re.entity_types or --train")
        records = self.read(self.data_cfg.train)
        types = sorted({t for r in records for t in (r.head.type, r.tail.type) if t})
        if not types:
            log.warning("%s has no entity types: typed markers fall back to plain ones", self.data_cfg.train)
        return types

    def setup(self, train: Sequence[RelationExample]) -> None:
        """The label set: every label of train and the other direction of each directed one, sorted.

        SemEval's train holds a single Entity-Destination(e2,e1); a seeded dev split may take it, and
        the test file has one: a directed relation is possible both ways, whatever train happens to hold.
        """
        seen = {r.label for r in train if r.label is not None}
        self.labels = sorted(seen | {mirrored(label) for label in seen})
        if len(self.labels) > len(seen):
            log.info(
                "labels not in train, added as the other direction of one: %s",
                sorted(set(self.labels) - seen),
            )
        if len(self.labels) < 2:
            raise BertkitError(f"training data has {len(self.labels)} label(s): {self.labels}; need more")
        if self.cfg.negative_label and self.cfg.negative_label not in self.labels:
            log.warning(
                "no training relation is labelled %r (--negative-label): every label counts in the macro F1",
                self.cfg.negative_label,
            )
        log.info("%d labels: %s", len(self.labels), ", ".join(self.labels[:20]))

    # -- records -> features ------------------------------------------------------------------------

    def encode(self, records: Sequence[RelationExample]) -> list[RelationFeature]:
        """One window per relation; pure (no logging), so prediction can call it per request."""
        flat = [segment for record in records for segment in text_segments(record)]
        # verbose=False: transformers warns about texts longer than the model, which windows handle
        pieces = self.tokenizer(flat, add_special_tokens=False, verbose=False)["input_ids"] if flat else []
        index = {label: i for i, label in enumerate(self.labels or [])}
        prefix = len(self.template.single[0])
        features = []
        for r, record in enumerate(records):
            before, first, between, second, after = pieces[5 * r : 5 * r + 5]
            head_first = record.head.start < record.tail.start
            head, tail = self.marked(record.head, 1), self.marked(record.tail, 2)
            (o1, c1), (o2, c2) = (head, tail) if head_first else (tail, head)
            parts = MarkedParts(before, Marked(o1, first, c1), between, Marked(o2, second, c2), after)
            window = fit_window(parts, self.budget)
            ids, types = self.template.build(window.ids)
            starts = (prefix + window.first_start, prefix + window.second_start)
            head_start, tail_start = starts if head_first else starts[::-1]
            target = None if record.label is None else index.get(record.label)
            features.append(
                RelationFeature(
                    ids, types, head_start, tail_start, r, target, window.trimmed, window.shortened
                )
            )
        return features

    def marked(self, arg: Any, side: int) -> tuple[list[int], list[int]]:
        """The opening and closing marker ids around one argument."""
        known = None if self.cfg.representation == CLS else (self.cfg.entity_types or [])
        opening, closing = markers_of(arg, side, self.typed, known)
        return self.marker_ids(opening), self.marker_ids(closing)

    def marker_ids(self, marker: str) -> list[int]:
        if marker not in self.marker_cache:
            if self.cfg.representation == CLS:  # plain text: the pieces the tokenizer cuts it into
                ids = self.tokenizer(marker, add_special_tokens=False)["input_ids"]
            else:
                token = self.tokenizer.convert_tokens_to_ids(marker)
                if token is None or token == self.tokenizer.unk_token_id:
                    raise BertkitError(
                        f"the tokenizer has no {marker} token: prepare_tokenizer adds the entity markers"
                    )
                ids = [token]
            self.marker_cache[marker] = ids
        return self.marker_cache[marker]

    def describe_encoding(
        self, records: Sequence[RelationExample], features: Sequence[RelationFeature], split: str
    ) -> None:
        super().describe_encoding(records, features, split)
        trimmed = sum(f.trimmed and not f.shortened for f in features)
        if trimmed:
            log.info(
                "%s: %d relations longer than one window: one window around both entities", split, trimmed
            )
        shortened = sum(f.shortened for f in features)
        if shortened:
            log.warning(
                "%s: %d relation(s) with the entities farther apart than a window of %d sub-words holds: "
                "predicted from the text next to each entity, the middle of the text between them left "
                "out (raise --max-length to see more)",
                split,
                shortened,
                self.model_cfg.max_length,
            )

    def uncovered(self, records: Sequence[RelationExample], features: Sequence[RelationFeature]) -> int:
        return len(records) - len({f.record for f in features})

    def collate(self, features: Sequence[RelationFeature]) -> Batch:
        ids = [f.input_ids for f in features]
        length = self.batch_length(ids)
        batch = {
            "input_ids": pad(ids, self.tokenizer.pad_token_id or 0, length=length),
            "token_type_ids": pad([f.token_type_ids for f in features], 0, length=length),
            "attention_mask": padding_mask(ids, length),
            "head_start": torch.tensor([f.head_start for f in features], dtype=torch.long),
            "tail_start": torch.tensor([f.tail_start for f in features], dtype=torch.long),
            "record": [f.record for f in features],
        }
        if all(f.target is not None for f in features):
            batch["labels"] = torch.tensor([f.target for f in features], dtype=torch.long)
        return batch

    # -- model ---------------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        labels = self.labels or []
        encoder = load_model(
            AutoModel,
            self.model_cfg,
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        if len(self.tokenizer) > encoder.get_input_embeddings().num_embeddings:
            encoder.resize_token_embeddings(len(self.tokenizer))
            if self.model_cfg.freeze_embeddings:
                freeze(encoder, True, 0)
                log.warning("--model.freeze_embeddings: the new marker embeddings stay as initialised")
        return EncoderForRelationClassification(encoder, self.cfg.representation)

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(outputs.logits.float(), batch["labels"])

    # -- features -> predictions ---------------------------------------------------------------------

    def decoder(
        self, records: Sequence[RelationExample], features: Sequence[RelationFeature]
    ) -> RelationDecoder:
        shortened = {f.record for f in features if f.shortened}
        return RelationDecoder(
            Counter(f.record for f in features), len(records), self.labels or [], shortened
        )

    def metrics(self, predictions: list[RelationPrediction], records: Sequence[RelationExample]) -> dict:
        if any(r.label is None for r in records):
            raise BertkitError(f"{records[0].path}: the file has no labels to evaluate against")
        return self.scores([r.label for r in records], [p.label for p in predictions])

    def scores(self, gold: list[str], pred: list[str]) -> dict:
        # a held-out dev split may hold a label train lacks: scored, but no confusion matrix over it
        known = self.labels if set(gold) <= set(self.labels or ()) else None
        return relation_scores(gold, pred, self.cfg.negative_label, known)

    def baseline(self, train: Sequence[RelationExample], records: Sequence[RelationExample]) -> dict | None:
        """The scores of always predicting the most frequent training label (SemEval: Other, F1 0)."""
        if any(r.label is None for r in records):
            return None
        guess = majority_label([r.label for r in train], self.labels)
        gold = [r.label for r in records]
        return {
            **self.scores(gold, [guess] * len(gold)),
            "prediction": guess,
        }

    # -- outputs -------------------------------------------------------------------------------------

    def to_record(self, item: Any) -> RelationExample:
        """A RelationExample, a ``{"text", "head", "tail"}`` mapping (the JSON lines schema), or a text
        with SemEval tags: ``"the <e1>cup</e1> holds <e2>tea</e2>"``."""
        try:
            if isinstance(item, dict):
                return parse_relation(item)
            if isinstance(item, str):
                return RelationExample(*strip_tags(item))
        except ValueError as err:
            raise BertkitError(f"{self.name}: cannot predict {short(item)}: {err}") from None
        return super().to_record(item)

    def result(self, record: RelationExample, prediction: RelationPrediction) -> RelationResult:
        return RelationResult.of(
            record, prediction.label, prediction.score, prediction.probs, prediction.shortened
        )

    def prediction_writer(self, src: str, out: str) -> PredictionWriter:
        """JSON lines; an output named ``*.txt`` gets SemEval's answer format (``id<TAB>label``), which
        the official scorer reads."""
        if Path(out).suffix.lower() == ".txt":
            return SemEvalAnswerWriter(out)
        return super().prediction_writer(src, out)


class RelationDecoder(WindowDecoder):
    """Class probabilities of each relation's window, and its label."""

    def __init__(self, windows: Counter, n_records: int, labels: list[str], shortened: set[int]):
        self.labels, self.shortened = labels, shortened
        self.pending: dict[int, np.ndarray] = {}
        super().__init__(windows, n_records)

    def window_outputs(self, outputs: Any, batch: Batch) -> np.ndarray:
        return torch.softmax(outputs.logits.float(), dim=-1).cpu().numpy()

    def collect(self, record: int, payload: np.ndarray) -> None:
        self.pending[record] = payload

    def finish(self, record: int) -> RelationPrediction:
        probs = self.pending.pop(record)
        best = int(probs.argmax())
        return RelationPrediction(
            self.labels[best],
            float(probs[best]),
            {label: float(p) for label, p in zip(self.labels, probs)},
            record in self.shortened,
        )
