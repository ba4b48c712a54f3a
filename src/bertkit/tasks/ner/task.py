"""Named-entity recognition as token classification.

Words are tagged on their first sub-word; sentences longer than the model's window are split into
overlapping windows, and each word's prediction is taken from the one window that owns it, so every
input word gets exactly one tag. Decoding keeps to the tag scheme's rules (Viterbi over allowed
transitions) rather than taking each word's argmax.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForTokenClassification

from bertkit.config import DataConfig, ModelConfig, option
from bertkit.data.padding import IGNORE, pad, padding_mask
from bertkit.data.readers import detect_token_format, read_token_file
from bertkit.data.readers.text import text_example
from bertkit.data.tagschemes import SCHEMES, detect_scheme, split_tag, tags_to_spans
from bertkit.data.windows import Template, owning_windows, window_starts
from bertkit.errors import BertkitError
from bertkit.modeling.load import load_model
from bertkit.records import Entity, TokenExample
from bertkit.tasks.base import Batch, PredictionWriter, TaskBase
from bertkit.tasks.ner.decoding import TagDecoder, WordTags
from bertkit.tasks.ner.metrics import entity_scores
from bertkit.tasks.ner.writer import ConllTagWriter

log = logging.getLogger(__name__)

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


class NerTask(TaskBase):
    """Named-entity recognition (token classification)."""

    name = "ner"
    main_metric = "f1"
    # token types too (all 0), as the tokenizer gives them: an ONNX export then takes a plain
    # onnxruntime user's dict(tokenizer(texts, return_tensors="np")) as it is
    input_names = ("input_ids", "attention_mask", "token_type_ids")
    config_class = NerConfig
    model_class = AutoModelForTokenClassification
    record_class = TokenExample
    predict_io = (
        "CoNLL (written back with a tag column appended) or plain text, one text per line "
        "(JSON lines of entities)"
    )

    def __init__(
        self,
        cfg: NerConfig,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        super().__init__(cfg, model_cfg, data_cfg, tokenizer, labels)
        if labels and cfg.tag_scheme == "auto":  # a saved model: its labels say which scheme it tags in
            cfg.tag_scheme = detect_scheme([labels])
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
        """Windows of every sentence; pure (no logging, no state), so prediction can call it per request."""
        pieces = self.subword_pieces(records)
        contexts = self.document_contexts(records, pieces) if self.cfg.document_context else None
        features = []
        for r, (record, words) in enumerate(zip(records, pieces)):
            left, right = contexts[r] if contexts else ([], [])
            features += self.windows(r, words, self.word_labels(record), left, right)
        return features

    def subword_pieces(self, records: Sequence[TokenExample]) -> list[list[list[int]]]:
        """Sub-word ids of every word; a word the tokenizer drops entirely (e.g. U+200B) becomes [UNK]."""
        # verbose=False: transformers warns about sequences longer than the model, which windows handle
        enc = self.tokenizer(
            [list(r.tokens) for r in records],
            is_split_into_words=True,
            add_special_tokens=False,
            verbose=False,
        )
        out = []
        for i, record in enumerate(records):
            words: list[list[int]] = [[] for _ in record.tokens]
            for token_id, word in zip(enc["input_ids"][i], enc.word_ids(i)):
                words[word].append(token_id)
            for w in words:
                if not w:
                    w.append(self.tokenizer.unk_token_id)
            out.append(words)
        return out

    def word_labels(self, record: TokenExample) -> list[int] | None:
        if record.tags is None:
            return None
        ids = self.label2id
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

    def uncovered(self, records: Sequence[TokenExample], features: Sequence[TokenFeature]) -> int:
        # measured, not assumed: a word that no window owns would get no prediction
        return sum(len(r) for r in records) - sum(len(f.slots) for f in features)

    def describe_encoding(
        self, records: Sequence[TokenExample], features: Sequence[TokenFeature], split: str
    ) -> None:
        super().describe_encoding(records, features, split)
        unseen = Counter(t for r in records for t in r.tags or () if t not in self.label2id)
        if unseen:
            shown = ", ".join(f"{t} ({n})" for t, n in unseen.most_common(8))
            log.warning(
                "%s: %d tag(s) not in the training label set: %s; they are scored as missed",
                split,
                sum(unseen.values()),
                shown,
            )

    def collate(self, features: Sequence[TokenFeature]) -> Batch:
        """Dynamic padding to the longest window of the batch, rounded up (``batch_length``)."""
        ids = [f.input_ids for f in features]
        length = self.batch_length(ids)
        input_ids = pad(ids, self.tokenizer.pad_token_id or 0, length=length)
        return {
            "input_ids": input_ids,
            "attention_mask": padding_mask(ids, length),
            "token_type_ids": torch.zeros_like(input_ids),
            "labels": pad([f.labels for f in features], IGNORE, length=length),
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

    def require_gold(self, records: Sequence[TokenExample]) -> None:
        if any(r.tags is None for r in records):
            path = next(r.path for r in records if r.tags is None)
            raise BertkitError(f"{path}: the file has no tags to evaluate against")

    def metrics(self, predictions: list[WordTags], records: Sequence[TokenExample]) -> dict:
        self.require_gold(records)
        return entity_scores([r.tags for r in records], [p.tags for p in predictions], self.scheme)

    # -- outputs -------------------------------------------------------------------------------------

    def to_record(self, item: Any) -> TokenExample:
        """A text (words cut as BERT does, entities get character offsets), a list of tokens, a
        ``{"text": ...}`` or ``{"tokens": [...]}`` mapping, or a TokenExample."""
        if isinstance(item, dict):
            item = item.get("text", item.get("tokens", item))
        if isinstance(item, str):
            return text_example(item)
        if isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
            return TokenExample(tokens=list(item))
        return super().to_record(item)

    def result(self, record: TokenExample, prediction: WordTags) -> TaggedText:
        return TaggedText(
            entities=self.entities(record, prediction),
            tags=prediction.tags,
            text=record.text,
            tokens=None if record.text is not None else record.tokens,
        )

    def prediction_writer(self, src: str, out: str) -> PredictionWriter:
        """CoNLL input: the same file with a tag column appended; text or JSON input: JSON lines."""
        fmt = self.data_cfg.format if self.data_cfg.format != "auto" else detect_token_format(src)
        return ConllTagWriter(src, out) if fmt == "conll" else super().prediction_writer(src, out)

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


@dataclass
class TaggedText:
    """The prediction for one input: its entities (iterate over the result to get them), the tag of
    every word, and the text (or, for pre-tokenised input, the tokens) they refer to."""

    entities: list[Entity]
    tags: list[str]
    text: str | None = None
    tokens: list[str] | None = None

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.entities)

    def __len__(self) -> int:
        return len(self.entities)

    def __getitem__(self, index: int) -> Entity:
        return self.entities[index]

    def to_dict(self) -> dict[str, Any]:
        where = {"text": self.text} if self.text is not None else {"tokens": self.tokens, "tags": self.tags}
        entities = [
            {
                "text": e.text,
                "label": e.label,
                "start": e.start,
                "end": e.end,
                "score": round(e.score or 0, 4),
            }
            for e in self.entities
        ]
        return {**where, "entities": entities}


def gather(sentences: Sequence[list[int]], budget: int, reverse: bool = False) -> list[int]:
    """Concatenate sentences (nearest first) until ``budget`` ids are collected; keep reading order."""
    out: list[int] = []
    for ids in sentences:
        out = ids + out if reverse else out + ids
        if len(out) >= budget:
            break
    return out
