"""Named-entity recognition as token classification.

Words are tagged on their first sub-word; sentences longer than the model's window are split into
overlapping windows, and each word's prediction is taken from the one window that owns it, so every
input word gets exactly one tag. Decoding keeps to the tag scheme's rules (Viterbi over allowed
transitions) rather than taking each word's argmax.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForTokenClassification

from bertkit.config import DataConfig, ModelConfig, option
from bertkit.data.readers import read_token_file
from bertkit.data.readers.text import text_example
from bertkit.data.tagschemes import SCHEMES, split_tag, tags_to_spans
from bertkit.data.windows import Template, owning_windows, window_starts
from bertkit.data.writers import write_conll_with_tags, write_json_lines
from bertkit.errors import BertkitError
from bertkit.modeling.load import load_model
from bertkit.records import Entity, TokenExample
from bertkit.tasks.base import Batch
from bertkit.tasks.ner.decoding import TagDecoder, WordTags
from bertkit.tasks.ner.metrics import entity_scores

log = logging.getLogger(__name__)

IGNORE = -100
SCHEME_PREFIXES = {"io": "I", "iob1": "BI", "iob2": "BI", "bioes": "BIES", "bmes": "BMES"}


@dataclass
class NerConfig:
    token_column: int = option(0, "CoNLL column holding the token")
    tag_column: int = option(-1, "CoNLL column holding the tag (negative counts from the end)")
    tag_scheme: str = option(
        "auto", "tag scheme of the data (auto: detect from train)", "--tag-scheme", choices=("auto", *SCHEMES)
    )
    labels: list[str] | None = option(
        None, "fixed label set, comma-separated; other tags are errors", "--labels"
    )
    label_all_subwords: bool = option(False, "train on every sub-word of a word, not just the first")
    document_context: bool = option(
        False,
        "fill each window with neighbouring sentences of the same document as unlabelled context",
        "--document-context",
    )
    decode: str = option(
        "viterbi",
        "viterbi keeps to the scheme's allowed transitions; argmax does not",
        choices=("viterbi", "argmax"),
    )
    strip_position_suffix: bool = option(
        False, "strip a trailing position number from each token (Weibo NER's 我0)"
    )


@dataclass
class TokenFeature:
    """One window: sub-word ids with special tokens, labels, and the words this window owns."""

    input_ids: list[int]
    labels: list[int]
    record: int
    slots: list[tuple[int, int]]  # (position in the window, word index) of each owned word


class NerTask:
    """Named-entity recognition (token classification)."""

    name = "ner"
    main_metric = "f1"
    needs_calibration = False
    config_class = NerConfig
    model_class = AutoModelForTokenClassification

    def __init__(
        self,
        cfg: NerConfig,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        self.cfg, self.model_cfg, self.data_cfg, self.tokenizer = cfg, model_cfg, data_cfg, tokenizer
        self.labels = labels
        self.uncovered = 0  # inputs of the last encode() that no window covers (0 unless windowing broke)
        self.words_per_record = 1.0  # mean sentence length of train, the loss's scale (set by setup)
        self.prefix_ids, self.suffix_ids = Template.of(tokenizer).single
        budget = model_cfg.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        if budget < 2:
            raise BertkitError(f"max_length {model_cfg.max_length} leaves no room for text")
        self.window = budget
        self.stride = min(model_cfg.stride, budget // 2)
        if self.stride != model_cfg.stride:
            log.info(
                "stride %d does not fit windows of %d sub-words; using %d",
                model_cfg.stride,
                budget,
                self.stride,
            )

    @property
    def scheme(self) -> str:
        return self.cfg.tag_scheme

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels or [])}

    def read(self, path: str, *, labelled: bool = True) -> list[TokenExample]:
        corpus = read_token_file(
            path,
            format=self.data_cfg.format,
            token_column=self.cfg.token_column,
            tag_column=self.cfg.tag_column if labelled else None,
            scheme=self.cfg.tag_scheme,
            labels=self.cfg.labels,
            on_bad_line=self.data_cfg.on_bad_line,
            strip_position_suffix=self.cfg.strip_position_suffix,
        )
        if self.cfg.tag_scheme == "auto" and any(ex.tags for ex in corpus.examples):
            self.cfg.tag_scheme = corpus.scheme  # fixed from now on, and written to run.yaml
        return corpus.examples

    def setup(self, train: Sequence[TokenExample]) -> None:
        """Label set: every tag the scheme allows for each type seen in train (or the fixed set)."""
        self.words_per_record = max(1.0, sum(len(ex) for ex in train) / max(len(train), 1))
        if self.cfg.labels:
            self.labels = ["O", *[t for t in self.cfg.labels if t != "O"]]
            return
        types = sorted({split_tag(t)[1] for ex in train for t in ex.tags or [] if t != "O"})
        if not types:
            raise BertkitError("the training data holds no entities: nothing to learn")
        prefixes = SCHEME_PREFIXES["iob2" if self.scheme == "auto" else self.scheme]
        self.labels = ["O", *[f"{p}-{t}" for t in types for p in prefixes]]
        log.info("%d entity types, %d labels: %s", len(types), len(self.labels), ", ".join(types))

    # -- records -> features ------------------------------------------------------------------------

    def encode(self, records: Sequence[TokenExample]) -> list[TokenFeature]:
        pieces = self.subword_pieces(records)
        contexts = self.document_contexts(records, pieces) if self.cfg.document_context else None
        features, unseen = [], Counter()
        for r, (record, words) in enumerate(zip(records, pieces)):
            labels = self.word_labels(record, unseen)
            left, right = contexts[r] if contexts else ([], [])
            features += self.windows(r, words, labels, left, right)
        self.log_counts(records, pieces, features, unseen)
        return features

    def subword_pieces(self, records: Sequence[TokenExample]) -> list[list[list[int]]]:
        """Sub-word ids of every word; a word the tokenizer drops entirely (e.g. U+200B) becomes [UNK]."""
        enc = self.tokenizer(
            [list(r.tokens) for r in records], is_split_into_words=True, add_special_tokens=False
        )
        out = []
        self.unk_words = 0
        for i, record in enumerate(records):
            words: list[list[int]] = [[] for _ in record.tokens]
            for token_id, word in zip(enc["input_ids"][i], enc.word_ids(i)):
                words[word].append(token_id)
            for w in words:
                if not w:
                    w.append(self.tokenizer.unk_token_id)
                    self.unk_words += 1
            out.append(words)
        return out

    def word_labels(self, record: TokenExample, unseen: Counter) -> list[int] | None:
        if record.tags is None:
            return None
        ids = self.label2id
        for tag in record.tags:
            if tag not in ids:
                unseen[tag] += 1
        return [ids.get(tag, IGNORE) for tag in record.tags]

    def windows(
        self, r: int, words: list[list[int]], labels: list[int] | None, left: list[int], right: list[int]
    ) -> list[TokenFeature]:
        flat = [*left]
        first = []
        for w in words:
            first.append(len(flat))
            flat += w
        flat += right
        starts = window_starts(len(flat), self.window, self.stride)
        owners = owning_windows(len(flat), starts, self.window)
        features = []
        for wi, start in enumerate(starts):
            ids = [*self.prefix_ids, *flat[start : start + self.window], *self.suffix_ids]
            offset = len(self.prefix_ids) - start
            slots = [(first[w] + offset, w) for w in range(len(words)) if owners[first[w]] == wi]
            window_labels = [IGNORE] * len(ids)
            for pos, w in slots if labels is not None else ():
                window_labels[pos] = labels[w]
                if self.cfg.label_all_subwords:
                    last = min(pos + len(words[w]), len(ids) - len(self.suffix_ids))
                    for p in range(pos + 1, last):
                        window_labels[p] = self.continuation_label(labels[w])
            features.append(TokenFeature(ids, window_labels, r, slots))
        return features

    def continuation_label(self, label_id: int) -> int:
        """The label of a word's later sub-words: B-X continues as I-X (M-X in BMES), others as they are."""
        if label_id == IGNORE:
            return IGNORE
        prefix, kind = split_tag(self.labels[label_id])
        # only B-X continues differently; an S-X word's later pieces keep S-X (they are never decoded)
        follow = {"B": "M" if self.scheme == "bmes" else "I"}.get(prefix)
        return self.label2id.get(f"{follow}-{kind}", label_id) if follow else label_id

    def document_contexts(
        self, records: Sequence[TokenExample], pieces: list[list[list[int]]]
    ) -> list[tuple[list[int], list[int]]]:
        """Sub-words of the neighbouring sentences of the same document, up to the free window space."""
        docs: dict[tuple[str, int], list[int]] = defaultdict(list)
        for r, record in enumerate(records):
            docs[(record.path, record.doc_id)].append(r)
        out: list[tuple[list[int], list[int]]] = [([], []) for _ in records]
        for members in docs.values():
            flat = [[t for w in pieces[r] for t in w] for r in members]
            for k, r in enumerate(members):
                budget = self.window - len(flat[k])
                if budget <= 0:
                    continue
                left = gather(flat[k - 1 :: -1] if k else [], budget, reverse=True)
                right = gather(flat[k + 1 :], budget)
                take_right = min(len(right), budget - min(len(left), budget // 2))
                take_left = min(len(left), budget - take_right)
                out[r] = (left[len(left) - take_left :], right[:take_right])
        return out

    def log_counts(
        self, records: Sequence[TokenExample], pieces: list, features: list, unseen: Counter
    ) -> None:
        path = records[0].path if records else "?"
        split = len(features) - len(records)
        words = sum(len(p) for p in pieces)
        # measured, not assumed: a word that no window owns would get no prediction
        self.uncovered = words - sum(len(f.slots) for f in features)
        log.info(
            "%s: %d sentences, %d words, %d windows (%d extra from long sentences), %d words without "
            "sub-words given [UNK], %d words left without a window",
            path,
            len(records),
            words,
            len(features),
            max(split, 0),
            self.unk_words,
            self.uncovered,
        )
        if unseen:
            shown = ", ".join(f"{t} ({n})" for t, n in unseen.most_common(8))
            log.warning(
                "%s: %d tag(s) not in the training label set: %s; they are scored as missed",
                path,
                sum(unseen.values()),
                shown,
            )

    def collate(self, features: Sequence[TokenFeature]) -> Batch:
        """Dynamic padding to the longest window of the batch."""
        length = max(len(f.input_ids) for f in features)
        pad = self.tokenizer.pad_token_id or 0
        ids = [f.input_ids + [pad] * (length - len(f.input_ids)) for f in features]
        mask = [[1] * len(f.input_ids) + [0] * (length - len(f.input_ids)) for f in features]
        labels = [f.labels + [IGNORE] * (length - len(f.labels)) for f in features]
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
            "record": [f.record for f in features],
            "slots": [f.slots for f in features],
        }

    # -- model ---------------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        return load_model(
            AutoModelForTokenClassification,
            self.model_cfg,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id=self.label2id,
        )

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        labels = batch["labels"]
        logits = outputs.logits.float()
        # Every word weighs the same, however the batch was drawn. A per-batch mean would give the words
        # of a batch of short sentences more weight than those of a batch of long ones, which length-
        # grouped batches (all short or all long) turn into a bias toward short sentences. Dividing the
        # sum by the expected word count of a batch keeps the scale of a mean without that bias.
        total = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        return total / (len(labels) * self.words_per_record)

    # -- features -> predictions ---------------------------------------------------------------------

    def decoder(self, records: Sequence[TokenExample], features: Sequence[TokenFeature]) -> TagDecoder:
        return TagDecoder(
            self.labels,
            self.scheme,
            self.cfg.decode,
            [len(r) for r in records],
            Counter(f.record for f in features),
        )

    def metrics(self, predictions: list[WordTags], records: Sequence[TokenExample]) -> dict:
        if any(r.tags is None for r in records):
            path = next(r.path for r in records if r.tags is None)
            raise BertkitError(f"{path}: the file has no tags to evaluate against")
        return entity_scores([r.tags for r in records], [p.tags for p in predictions], self.scheme)

    def baseline(self, train: Sequence[TokenExample], records: Sequence[TokenExample]) -> dict | None:
        return None  # no meaningful majority baseline for entities (it would predict none)

    def calibrate(self, predictions: list[WordTags], records: Sequence[TokenExample]) -> None:
        """Nothing to tune after training."""

    def augment_train(self, train: list[TokenExample], seed: int) -> list[TokenExample]:
        return train  # no augmentation for tagging yet

    # -- outputs -------------------------------------------------------------------------------------

    def text_records(self, texts: Sequence[str]) -> list[TokenExample]:
        return [text_example(t) for t in texts]

    def to_api(self, record: TokenExample, prediction: WordTags) -> list[Entity]:
        return self.entities(record, prediction)

    def write_predictions(
        self, src: str, out: str, records: Sequence[TokenExample], predictions: list[WordTags]
    ) -> None:
        """CoNLL input: the same file with a tag column appended; text or JSON input: JSON lines."""
        if records and records[0].text is None and records[0].lines:
            tag_of_line = {}
            for record, prediction in zip(records, predictions):
                tag_of_line.update(zip(record.lines, prediction.tags))
            write_conll_with_tags(src, out, tag_of_line)
            return
        write_json_lines(out, (self.entity_row(r, p) for r, p in zip(records, predictions)))

    def entity_row(self, record: TokenExample, prediction: WordTags) -> dict[str, Any]:
        row: dict[str, Any] = (
            {"text": record.text}
            if record.text is not None
            else {"tokens": record.tokens, "tags": prediction.tags}
        )
        row["entities"] = [
            {"text": e.text, "label": e.label, "start": e.start, "end": e.end, "score": round(e.score, 4)}
            for e in self.entities(record, prediction)
        ]
        return row

    def entities(self, record: TokenExample, prediction: WordTags) -> list[Entity]:
        """Predicted entities as character spans of the record's text (token spans when it has none)."""
        out = []
        for span in tags_to_spans(prediction.tags, self.scheme):
            score = float(np.mean(prediction.probs[span.start : span.end]))
            if record.offsets is not None and record.text is not None:
                start, end = record.offsets[span.start][0], record.offsets[span.end - 1][1]
                out.append(Entity(record.text[start:end], span.label, start, end, score))
            else:
                text = " ".join(record.tokens[span.start : span.end])
                out.append(Entity(text, span.label, span.start, span.end, score))
        return out


def gather(sentences: Sequence[list[int]], budget: int, reverse: bool = False) -> list[int]:
    """Concatenate sentences (nearest first) until ``budget`` ids are collected; keep reading order."""
    out: list[int] = []
    for ids in sentences:
        out = ids + out if reverse else out + ids
        if len(out) >= budget:
            break
    return out
