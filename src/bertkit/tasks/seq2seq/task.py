"""Sequence to sequence: a source text in, a generated text out (summaries, translations, replies).

The model is a BERT-initialised encoder-decoder (``model.py``); a source longer than the encoder's
window is encoded in windows whose states the decoder reads as one memory (``encoding.py``). Training
is teacher-forced cross-entropy; evaluation generates (beam search or sampling, ``generation.py``) and
scores with ROUGE, sacreBLEU, chrF and, for dialogue, distinct-n (``metrics.py``). Dev selection uses
the loss by default, or the generation metric on a subset of dev (``--seq2seq.select_by``).
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import EncoderDecoderModel

from bertkit.config import DataConfig, ModelConfig, option
from bertkit.data.padding import IGNORE, batch_length, pad, padding_mask
from bertkit.data.readers.seq2seq import SEQ2SEQ_FORMATS, read_seq2seq
from bertkit.data.windows import Template, window_starts
from bertkit.errors import BertkitError
from bertkit.modeling.load import load_config, load_tokenizer, position_limit
from bertkit.modeling.weights import unshared
from bertkit.records import Seq2SeqExample
from bertkit.tasks.base import Batch, TaskBase, WindowDecoder, short
from bertkit.tasks.seq2seq.encoding import encode_sources, layout_sources
from bertkit.tasks.seq2seq.generation import generate, generation_config
from bertkit.tasks.seq2seq.metrics import KINDS, MAIN_METRIC, generation_scores
from bertkit.tasks.seq2seq.model import build_encoder_decoder
from bertkit.tasks.seq2seq.writer import Seq2SeqResult, detokenize

log = logging.getLogger(__name__)

DECODER_TOKENIZER = "decoder_tokenizer"  # where a model with its own decoder vocabulary keeps it


@dataclass
class Seq2SeqConfig:
    decoder: str | None = option(
        None,
        "decoder checkpoint (default: the encoder's, bert2bert); one with another vocabulary works "
        "(an English encoder and a Chinese decoder)",
        "--decoder",
    )
    share_weights: bool = option(
        False,
        "BERTShare: the decoder uses the encoder's weights, only cross-attention is its own",
        "--share-weights",
    )
    kind: str = option(
        "summarize", "what is generated: it picks the metrics and the main one", "--kind", choices=KINDS
    )
    language: str = option(
        "auto",
        "language of the targets, for the metrics' tokenizers (auto: from the text)",
        choices=("auto", "en", "zh"),
    )
    format: str = option("auto", "input format (auto: by suffix and content)", choices=SEQ2SEQ_FORMATS)
    source_field: str = option("source", "JSON key or header column of the source", "--source-field")
    target_field: str = option("target", "JSON key or header column of the target(s)", "--target-field")
    control_field: str | None = option(
        None, "JSON key or column of a control code, prepended to the source as a token", "--control-field"
    )
    controls: list[str] | None = option(None, "the control codes that get a token (default: those of train)")
    source_column: int = option(0, "source column of a table without a header (Tatoeba: 0 English)", ge=0)
    target_column: int = option(1, "target column of a table without a header (Tatoeba: 1 Chinese)", ge=0)
    context_turns: int = option(0, "dialogue: previous turns in the context (0: all of them)", ge=0)
    max_target_length: int = option(
        0,
        "target sub-words trained on, [SEP] included; longer targets are counted and cut (0: the longest "
        "training target, up to the decoder's positions)",
        ge=0,
    )
    num_beams: int = option(4, "beam size (1: greedy, or sampling with --sample)", "--num-beams", ge=1)
    max_new_tokens: int = option(
        0, "most sub-words generated (0: max_target_length)", "--max-new-tokens", ge=0
    )
    min_new_tokens: int = option(
        0, "fewest sub-words generated before [SEP] may end", "--min-new-tokens", ge=0
    )
    length_penalty: float = option(1.0, "beam search: > 1 favours longer outputs", "--length-penalty")
    no_repeat_ngram_size: int = option(
        0, "never repeat an n-gram of this size (0: off)", "--no-repeat-ngram-size", ge=0
    )
    do_sample: bool = option(False, "sample instead of searching (dialogue)", "--sample")
    temperature: float = option(1.0, "sampling temperature", "--temperature", gt=0)
    top_k: int = option(50, "sampling: keep the k likeliest sub-words (0: all)", "--top-k", ge=0)
    top_p: float = option(1.0, "sampling: keep the smallest set with this probability", "--top-p", gt=0, le=1)
    generation_seed: int = option(0, "seed of sampling, set at the start of each prediction run")
    select_by: str = option(
        "loss",
        "what picks the best dev checkpoint: the teacher-forced loss (fast), or the generation metric "
        "of --seq2seq.kind on --seq2seq.dev_generate dev records",
        choices=("loss", "generate"),
    )
    dev_generate: int = option(
        200, "dev records generated at each evaluation with select_by generate (0: all)", ge=0
    )


@dataclass
class Seq2SeqFeature:
    """One record: its source sub-words (control token first, no special tokens) and its target's."""

    input_ids: list[int]
    labels: list[int] | None  # target sub-words and the decoder's end token; None when unlabelled
    record: int
    cut: int = 0  # target sub-words beyond max_target_length, left out of training


@dataclass
class Seq2SeqPrediction:
    text: str | None  # None when only the loss was asked for (dev selection by loss)
    nll: float | None = None  # summed over the target's sub-words, teacher-forced
    tokens: int = 0


class Seq2SeqTask(TaskBase):
    """Sequence to sequence with a BERT-initialised encoder-decoder: summaries, translations, replies."""

    name = "seq2seq"
    config_class = Seq2SeqConfig
    model_class = EncoderDecoderModel
    record_class = Seq2SeqExample
    predict_io = (
        'JSON lines with a source (and targets), TSV/CSV, KdConv JSON or {"turns": [...]} dialogues '
        "(JSON lines of generated texts)"
    )
    predict_chunk = 256  # generation is slow: write outputs a few batches at a time, in input order
    bf16_weights = True
    exportable = False  # the search loop is Python around the decoder (an ONNX export would need two graphs)

    def __init__(
        self,
        cfg: Seq2SeqConfig,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        super().__init__(cfg, model_cfg, data_cfg, tokenizer, labels)
        if cfg.share_weights and model_cfg.peft != "none":
            raise BertkitError(
                f"--peft {model_cfg.peft} with --share-weights: shared layers cannot take two adapters"
            )
        self.target_tokenizer = self.load_target_tokenizer()
        self.template = Template.of(tokenizer)
        self.budget = model_cfg.max_length - self.template.single_overhead
        self.stride = min(model_cfg.stride, self.budget // 2)
        self.generating = True  # dev selection by loss turns it off (``selection``)
        self.main_metric = "loss" if cfg.select_by == "loss" else MAIN_METRIC[cfg.kind]
        self.greater_is_better = cfg.select_by != "loss"

    def load_target_tokenizer(self) -> Any:
        """The decoder's tokenizer: saved beside a fine-tuned model, or the ``--decoder``'s, or the
        encoder's own."""
        saved = Path(self.model_cfg.name_or_path or "") / DECODER_TOKENIZER
        if saved.is_dir():
            return load_tokenizer(ModelConfig(name_or_path=str(saved)))
        if self.cfg.decoder:
            return load_tokenizer(
                ModelConfig(name_or_path=self.cfg.decoder, revision=self.model_cfg.revision)
            )
        return self.tokenizer

    @property
    def separate_vocabularies(self) -> bool:
        return self.target_tokenizer is not self.tokenizer

    def saved_tokenizer(self, tokenizer: Any) -> Any:
        return PairedTokenizer(tokenizer, self.target_tokenizer) if self.separate_vocabularies else tokenizer

    def saved_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """Shared weights (BERTShare) saved once per side, so plain transformers opens the model."""
        return unshared(model.state_dict()) if self.cfg.share_weights else None

    # -- reading ------------------------------------------------------------------------------------

    def read(self, path: str, *, labelled: bool = True) -> list[Seq2SeqExample]:
        cfg = self.cfg
        # --data.format jsonl (the shared flag) picks JSON lines when the seq2seq section leaves it to auto
        fmt = "jsonl" if cfg.format == "auto" and self.data_cfg.format == "jsonl" else cfg.format
        return read_seq2seq(
            path,
            labelled=labelled,
            fmt=fmt,
            source_field=cfg.source_field,
            target_field=cfg.target_field,
            control_field=cfg.control_field,
            source_column=cfg.source_column,
            target_column=cfg.target_column,
            context_turns=cfg.context_turns,
            separator=self.tokenizer.sep_token or "[SEP]",
            on_bad_line=self.data_cfg.on_bad_line,
        )

    # -- training -----------------------------------------------------------------------------------

    def prepare_tokenizer(self, tokenizer: Any) -> None:
        """Add one token per control code (those of train unless given), before the model is built."""
        if not self.cfg.control_field:
            return
        if self.cfg.controls is None:
            if not self.data_cfg.train:
                raise BertkitError("--control-field needs the codes: pass --seq2seq.controls or --train")
            codes = {r.control for r in self.read(self.data_cfg.train) if r.control}
            self.cfg.controls = sorted(codes)  # fixed from now on, and written to run.yaml
        added = tokenizer.add_special_tokens(
            {"extra_special_tokens": [control_token(c) for c in self.cfg.controls]},
            replace_extra_special_tokens=False,
        )
        log.info("control codes: %d tokens added (%s)", added, ", ".join(self.cfg.controls[:12]))

    def setup(self, train: Sequence[Seq2SeqExample]) -> None:
        """Fix the target length: the longest training target unless given, within the decoder's positions."""
        limit = position_limit(self.decoder_config()) or 10**9
        if self.cfg.max_target_length == 0:
            lengths = self.target_lengths(train)
            longest = max(lengths, default=1) + 1  # the end token
            self.cfg.max_target_length = min(longest, limit)
            log.info(
                "max_target_length %d (the longest training target, with [SEP])", self.cfg.max_target_length
            )
        elif self.cfg.max_target_length > limit:
            raise BertkitError(
                f"--seq2seq.max_target_length {self.cfg.max_target_length} is more than the decoder's "
                f"{limit} positions"
            )

    def target_lengths(self, records: Sequence[Seq2SeqExample]) -> list[int]:
        texts = [r.target for r in records if r.target is not None]
        if not texts:
            return []
        return [
            len(ids)
            for ids in self.target_tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        ]

    def decoder_config(self) -> Any:
        return load_config(self.decoder_model_cfg())

    def decoder_model_cfg(self) -> ModelConfig:
        if not self.cfg.decoder:
            return self.model_cfg
        return ModelConfig(
            name_or_path=self.cfg.decoder,
            revision=self.model_cfg.revision,
            trust_remote_code=self.model_cfg.trust_remote_code,
            dropout=self.model_cfg.dropout,
        )

    # -- records -> features ------------------------------------------------------------------------

    def encode(self, records: Sequence[Seq2SeqExample]) -> list[Seq2SeqFeature]:
        """One feature per record; pure (no logging), so prediction can call it per request."""
        if not records:
            return []
        sources = self.tokenizer([r.source for r in records], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        labelled = [r.target is not None for r in records]
        texts = [r.target for r in records if r.target is not None]
        targets = iter(
            self.target_tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
            if texts
            else []
        )
        room = (self.cfg.max_target_length or 10**9) - 1
        eos = self.end_token_id
        features = []
        for i, (record, ids) in enumerate(zip(records, sources)):
            if record.control is not None:
                ids = [self.control_id(record), *ids]
            labels, cut = None, 0
            if labelled[i]:
                target = next(targets)
                cut = max(0, len(target) - room)
                labels = [*target[:room], eos]
            features.append(Seq2SeqFeature(ids, labels, i, cut))
        return features

    def control_id(self, record: Seq2SeqExample) -> int:
        if record.control not in (self.cfg.controls or ()):
            where = f"{record.path}:{record.line}: " if record.path else ""
            known = ", ".join(self.cfg.controls or ()) or "none (train had no --control-field)"
            raise BertkitError(f"{where}unknown control code {record.control!r}; known: {known}")
        return self.tokenizer.convert_tokens_to_ids(control_token(record.control))

    @property
    def end_token_id(self) -> int:
        tok = self.target_tokenizer
        eos = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        if eos is None:
            raise BertkitError("the decoder's tokenizer has neither [SEP] nor an end-of-sequence token")
        return eos

    @property
    def start_token_id(self) -> int:
        tok = self.target_tokenizer
        start = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        if start is None:
            raise BertkitError("the decoder's tokenizer has neither [CLS] nor a start token")
        return start

    def window_count(self, features: Sequence[Seq2SeqFeature]) -> int:
        """A feature is a whole source: one window, or the overlapping windows a long one is read in."""
        return sum(len(window_starts(len(f.input_ids), self.budget, self.stride)) for f in features)

    def describe_encoding(
        self, records: Sequence[Seq2SeqExample], features: Sequence[Seq2SeqFeature], split: str
    ) -> None:
        super().describe_encoding(records, features, split)
        long = sum(len(f.input_ids) > self.budget for f in features)
        if long:
            log.info(
                "%s: %d source(s) longer than one window of %d sub-words: encoded in overlapping windows, "
                "the decoder reads all of each",
                split,
                long,
                self.model_cfg.max_length,
            )
        cut = [f.cut for f in features if f.cut]
        if cut:
            beyond = (
                "are not trained on"
                if split == "train"
                else "are left out of this split's loss and perplexity (generated text is scored against"
                " the whole reference)"
            )
            log.warning(
                "%s: %d target(s) longer than max_target_length %d: %d sub-words beyond it %s (raise "
                "--seq2seq.max_target_length)",
                split,
                len(cut),
                self.cfg.max_target_length,
                sum(cut),
                beyond,
            )

    def collate(self, features: Sequence[Seq2SeqFeature]) -> Batch:
        layout = layout_sources([f.input_ids for f in features], self.template, self.budget, self.stride)
        batch: Batch = {
            **layout.tensors(
                self.tokenizer.pad_token_id or 0, self.model_cfg.pad_multiple, self.model_cfg.max_length
            ),
            "record": [f.record for f in features],
        }
        if all(f.labels is not None for f in features):
            labels = [f.labels for f in features]
            start = self.start_token_id
            inputs = [[start, *row[:-1]] for row in labels]
            length = batch_length(inputs, self.model_cfg.pad_multiple, self.cfg.max_target_length or None)
            batch["decoder_input_ids"] = pad(inputs, self.target_tokenizer.pad_token_id or 0, length=length)
            batch["decoder_attention_mask"] = padding_mask(inputs, length)
            batch["labels"] = pad(labels, IGNORE, length=length)
        return batch

    # -- model ---------------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        model = build_encoder_decoder(
            self.model_cfg,
            self.decoder_model_cfg(),
            len(self.tokenizer),
            len(self.target_tokenizer),
            self.cfg.share_weights,
            {
                "decoder_start_token_id": self.start_token_id,
                "eos_token_id": self.end_token_id,
                "pad_token_id": self.target_tokenizer.pad_token_id or 0,
            },
        )
        model.generation_config = self.generation_config()
        return model

    def trained_whole(self, model: torch.nn.Module) -> list[str]:
        """The cross-attention is new (random) in a BERT-initialised decoder, so LoRA trains it whole,
        as it does the LM head's transform where the checkpoint has none; the adapters go on the rest."""
        return ["crossattention", "transform"]

    def generation_config(self) -> Any:
        return generation_config(
            self.cfg,
            start=self.start_token_id,
            end=self.end_token_id,
            pad=self.target_tokenizer.pad_token_id or 0,
            max_new_tokens=self.cfg.max_new_tokens or self.cfg.max_target_length or 128,
        )

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any:
        return teacher_forced(model, *encode_sources(model, batch), batch)

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        logits = outputs.logits
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)

    # -- evaluation ---------------------------------------------------------------------------------

    def selection(
        self, records: Sequence[Seq2SeqExample], features: Sequence[Seq2SeqFeature]
    ) -> tuple[Seq2SeqTask, Sequence[Seq2SeqExample], Sequence[Seq2SeqFeature]]:
        """What dev evaluation during training runs: the teacher-forced loss on all of dev, or generation
        on its first ``dev_generate`` records."""
        view = copy.copy(self)
        if self.cfg.select_by == "loss":
            view.generating = False
            log.info(
                "dev selection by teacher-forced loss on all %d dev records (no generation)", len(records)
            )
            return view, records, features
        n = self.cfg.dev_generate or len(records)
        if n < len(records):
            log.info(
                "dev selection by %s on the first %d of %d dev records", self.main_metric, n, len(records)
            )
            chosen = [f for f in features if f.record < n]
            return view, records[:n], chosen
        return view, records, features

    def predict_step(self, model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
        out: dict[str, Any] = {}
        memory, mask = encode_sources(model, batch)
        if "labels" in batch:
            logits = teacher_forced(model, memory, mask, batch).logits.float()
            labels = batch["labels"]
            nll = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
            out["nll"], out["tokens"] = nll.sum(1).tolist(), (labels != IGNORE).sum(1).tolist()
        if self.generating:
            sequences = generate(model, memory, mask, self.generation_config())
            out["texts"] = [detokenize(self.target_tokenizer, row) for row in sequences.tolist()]
        return out

    def decoder(
        self, records: Sequence[Seq2SeqExample], features: Sequence[Seq2SeqFeature]
    ) -> Seq2SeqDecoder:
        if self.generating and self.cfg.do_sample:
            torch.manual_seed(self.cfg.generation_seed)  # the same samples for the same inputs and seed
        return Seq2SeqDecoder(Counter(f.record for f in features), len(records))

    def metrics(self, predictions: list[Seq2SeqPrediction], records: Sequence[Seq2SeqExample]) -> dict:
        if any(r.targets is None for r in records):
            raise BertkitError(f"{records[0].path}: the file has no targets to evaluate against")
        scores: dict[str, Any] = {}
        tokens = sum(p.tokens for p in predictions)
        if tokens:
            loss = sum(p.nll or 0.0 for p in predictions) / tokens
            scores.update(loss=loss, perplexity=float(torch.tensor(loss).exp()))
        if self.generating:
            texts = [p.text or "" for p in predictions]
            scores.update(
                generation_scores(texts, [r.targets for r in records], self.cfg.kind, self.cfg.language)
            )
        return scores

    # -- outputs -------------------------------------------------------------------------------------

    def to_record(self, item: Any) -> Seq2SeqExample:
        """A Seq2SeqExample, a source text, a ``{"source", "control"}`` mapping, or ``{"turns": [...]}``
        (a dialogue so far: the reply to its last turn is generated)."""
        if isinstance(item, str):
            return Seq2SeqExample(item)
        if isinstance(item, dict):
            if isinstance(item.get("turns"), list) and all(isinstance(t, str) for t in item["turns"]):
                sep = f" {self.tokenizer.sep_token or '[SEP]'} "
                return Seq2SeqExample(sep.join(item["turns"][-self.cfg.context_turns or None :]))
            source = item.get(self.cfg.source_field, item.get("source"))
            if isinstance(source, list) and all(isinstance(s, str) for s in source):
                source = " ".join(source)
            if isinstance(source, str):
                control = item.get(self.cfg.control_field or "control")
                return Seq2SeqExample(source, control=control if isinstance(control, str) else None)
            raise BertkitError(f"{self.name}: cannot predict {short(item)}: no source text")
        return super().to_record(item)

    def result(self, record: Seq2SeqExample, prediction: Seq2SeqPrediction) -> Seq2SeqResult:
        return Seq2SeqResult(prediction.text or "", record.id)


def teacher_forced(model: torch.nn.Module, memory: Any, mask: torch.Tensor, batch: Batch) -> Any:
    """The decoder's outputs over the target given so far (shifted right), reading ``memory``."""
    return model(
        encoder_outputs=memory,
        attention_mask=mask,
        decoder_input_ids=batch["decoder_input_ids"],
        decoder_attention_mask=batch["decoder_attention_mask"],
    )


def control_token(code: str) -> str:
    return f"[CTRL:{code}]"


class Seq2SeqDecoder(WindowDecoder):
    """One row per record: its generated text and teacher-forced loss."""

    def __init__(self, windows: Counter, n_records: int):
        self.pending: dict[int, Seq2SeqPrediction] = {}
        super().__init__(windows, n_records)

    def window_outputs(self, outputs: dict[str, Any], batch: Batch) -> list[Seq2SeqPrediction]:
        rows = len(batch["record"])
        texts = outputs.get("texts") or [None] * rows
        nll = outputs.get("nll") or [None] * rows
        tokens = outputs.get("tokens") or [0] * rows
        return [Seq2SeqPrediction(t, n, k) for t, n, k in zip(texts, nll, tokens)]

    def collect(self, record: int, payload: Seq2SeqPrediction) -> None:
        self.pending[record] = payload

    def finish(self, record: int) -> Seq2SeqPrediction:
        return self.pending.pop(record)


class PairedTokenizer:
    """What a model with its own decoder vocabulary saves: the encoder's tokenizer in the model folder,
    the decoder's in ``decoder_tokenizer/`` beside it."""

    def __init__(self, source: Any, target: Any):
        self.source, self.target = source, target

    def save_pretrained(self, directory: str | Path) -> None:
        self.source.save_pretrained(directory)
        self.target.save_pretrained(Path(directory) / DECODER_TOKENIZER)
