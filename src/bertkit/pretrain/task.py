"""The pretraining task: BERT's masked LM (and next-sentence prediction) heads over encoder outputs.

The MLM head runs only at the masked positions (a sparse head): with a 30k vocabulary the dense decoder
over every position costs about as much as a small encoder, and 85% of its logits are thrown away.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bertkit.config import ModelConfig, option
from bertkit.data.padding import IGNORE, batch_length, pad, padding_mask
from bertkit.errors import BertkitError
from bertkit.pretrain.electra import build_electra, electra_forward
from bertkit.pretrain.masking import mask_tokens

OBJECTIVES = ("mlm+nsp", "mlm", "electra")
# BERT's miniatures (Turc et al., 2019, "Well-Read Students Learn Better") and BERT-base:
# layers, hidden size, attention heads; the feed-forward layer is 4x the hidden size
MODEL_SIZES = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
}


@dataclass
class PretrainConfig:
    input: list[str] = option([], "corpus files or folders (plain text)", "--input", nargs="+")
    tokenizer: str | None = option(None, "tokenizer directory (bertkit vocab) for a new model", "--tokenizer")
    model_size: str | None = option(
        None, "architecture of a new model", "--model-size", choices=tuple(MODEL_SIZES)
    )
    init: str | None = option(None, "continue pretraining this model (directory or hub id)", "--from")
    objective: str = option(
        "mlm+nsp",
        "training objective: BERT's, RoBERTa's (packed, no NSP), or ELECTRA's replaced-token detection",
        "--objective",
        choices=OBJECTIVES,
    )
    generator_layers: int = option(
        1, "electra: layers of the generator (the model's width, its embeddings shared)", ge=1
    )
    whole_word_mask: bool = option(False, "mask all sub-words of a word together", "--whole-word-mask")
    word_boundaries: str = option(
        "basic",
        "what a word is for whole-word masking: BERT's basic tokenizer, jieba's Chinese words, or "
        "the spaces of a pre-segmented corpus",
        "--word-boundaries",
        choices=("basic", "jieba", "pretokenized"),
    )
    sparse_head: bool = option(
        True, "run the MLM decoder at the masked positions only (off: at every position, as transformers)"
    )
    mlm_probability: float = option(0.15, "share of tokens chosen for prediction", gt=0, lt=1)
    short_seq_prob: float = option(
        0.1, "chance that a document's pairs get a shorter random target length (BERT's)", ge=0, le=1
    )
    duplicates: int = option(5, "passes over the corpus making instances (BERT's dupe_factor)", ge=1)
    heldout: float = option(
        0.02, "share of documents held out for evaluation (never trained on)", gt=0, lt=0.5
    )
    max_eval_instances: int = option(1000, "held-out instances evaluated at most", ge=1)
    documents: str = option(
        "blank",
        "what ends a document: a blank line, the end of a file, or every line",
        "--documents",
        choices=("blank", "file", "line"),
    )
    sentences: str = option(
        "split",
        "what a sentence is: cut at sentence ends (a paragraph's lines unwrapped first), or each line "
        "as it stands (BERT's create_pretraining_data.py input: one sentence per line)",
        "--sentences",
        choices=("split", "line"),
    )
    doc_start: str | None = option(None, "regex: a line matching it starts a new document", "--doc-start")
    keep_from: str | None = option(
        None, "regex: in each file, drop the lines up to and including the first match", "--keep-from"
    )
    keep_until: str | None = option(
        None, "regex: in each file, drop the first matching line and all after it", "--keep-until"
    )
    drop_lines: str | None = option(None, "regex: drop every matching line", "--drop-lines")
    on_bad_line: str = option(
        "error",
        "stop at a line that is not UTF-8, or count it and go on",
        "--on-bad-line",
        choices=("error", "warn"),
    )
    cache_dir: str | None = option(
        None, "where tokenised corpora are kept for reuse (default $BERTKIT_CACHE or ~/.cache/bertkit)"
    )


@dataclass
class PretrainOutput:
    """What the loss and the metrics need from one batch."""

    loss: torch.Tensor
    mlm_loss: torch.Tensor  # mean over the masked tokens
    mlm_logits: torch.Tensor  # (masked tokens, vocabulary)
    mlm_labels: torch.Tensor  # (masked tokens,)
    nsp_loss: torch.Tensor | None = None
    nsp_logits: torch.Tensor | None = None
    rtd_loss: torch.Tensor | None = None  # electra: the discriminator's, mean over real tokens
    rtd_logits: torch.Tensor | None = None  # (real tokens,)
    rtd_labels: torch.Tensor | None = None  # 1.0 where the generator replaced the token


def set_training_dropout(model: torch.nn.Module, dropout: float | None) -> None:
    """``--model.dropout`` for this run only: every dropout layer gets ``dropout`` while the saved config
    keeps the model's own rates, so that fine-tuning the result starts from BERT's 0.1 rather than from a
    pretraining choice (0 speeds up short runs: Geiping & Goldstein, 2022, "Cramming"). BERT's attention
    reads its rate from its dropout layer, so the layers are all there is to change."""
    if dropout is None:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout


def bert_config(size: str, tokenizer: Any, max_length: int) -> Any:
    """A new BERT of a preset size for this tokenizer (positions for at least 512 tokens)."""
    from transformers import BertConfig

    layers, hidden, heads = MODEL_SIZES[size]
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max(512, max_length),
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )


class PretrainTask:
    """Masked LM with dynamic masking, plus NSP for ``mlm+nsp`` or replaced-token detection for
    ``electra`` (``bertkit.pretrain.electra``); features come from ``Instances``."""

    name = "pretrain"
    input_names = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, cfg: PretrainConfig, model_cfg: ModelConfig, tokenizer: Any, seed: int = 0):
        self.cfg, self.model_cfg, self.tokenizer, self.seed = cfg, model_cfg, tokenizer, seed
        self.electra = cfg.objective == "electra"
        # ELECTRA's held-out losses cannot rank steps (see ElectraPretraining): the latest is kept
        self.main_metric = "batches_trained" if self.electra else "perplexity"
        self.greater_is_better = self.electra
        self.plot_metric = "rtd_accuracy" if self.electra else "perplexity"
        special = set(tokenizer.all_special_ids)
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise BertkitError("the tokenizer has no [MASK] or [PAD] token: it cannot pretrain a masked LM")
        self.special_ids = torch.tensor(sorted(special))
        self.random_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
        self.generator: torch.Generator | None = None  # None: torch's global RNG, saved with checkpoints

    # -- model --------------------------------------------------------------------------------------

    def build_model(self, config: Any = None) -> torch.nn.Module:
        """A new model from ``config``, or the ``--from`` model with fresh heads where it has none."""
        from transformers import BertForMaskedLM, BertForPreTraining, BertModel

        cls = {"mlm+nsp": BertForPreTraining, "mlm": BertForMaskedLM, "electra": BertModel}[
            self.cfg.objective
        ]
        model = cls(config) if config is not None else self._load(cls)
        if self.electra:
            model = build_electra(model, self.cfg.generator_layers)
        set_training_dropout(model, self.model_cfg.dropout)
        return model

    def saved_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The part of ``model`` that is the result: ELECTRA's discriminator, else all of it."""
        return model.bert if self.electra else model

    def _load(self, cls: Any) -> torch.nn.Module:
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a model without MLM/NSP heads is expected here: they start fresh
        try:
            model = cls.from_pretrained(
                self.cfg.init,
                revision=self.model_cfg.revision,
                trust_remote_code=self.model_cfg.trust_remote_code,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        if model.config.model_type != "bert":
            raise BertkitError(
                f"--from {self.cfg.init}: pretraining supports BERT models, not {model.config.model_type}"
            )
        return model

    # -- batches ------------------------------------------------------------------------------------

    def collate(self, features: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Pad, then mask anew (dynamic masking: every use of an instance draws a new mask)."""
        rows = [f.input_ids for f in features]
        length = batch_length(rows, self.model_cfg.pad_multiple, self.model_cfg.max_length)
        ids = pad(rows, self.tokenizer.pad_token_id, length=length)
        attention = padding_mask(rows, length)
        starts = (
            pad([f.word_starts for f in features], 1, length=length).bool()
            if self.cfg.whole_word_mask
            else None
        )
        maskable = attention.bool() & ~torch.isin(ids, self.special_ids)
        masked, labels = mask_tokens(
            ids,
            starts if starts is not None else torch.ones_like(maskable),
            maskable,
            mask_id=self.tokenizer.mask_token_id,
            random_ids=self.random_ids,
            probability=self.cfg.mlm_probability,
            whole_word=self.cfg.whole_word_mask,
            generator=self.generator,
        )
        batch = {
            "input_ids": masked,
            "attention_mask": attention,
            "token_type_ids": pad([f.token_type_ids for f in features], 0, length=length),
            "labels": labels,
        }
        if self.cfg.objective == "mlm+nsp":
            batch["next_sentence_label"] = torch.tensor([f.next_sentence_label for f in features])
        return batch

    # -- training -----------------------------------------------------------------------------------

    def forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> PretrainOutput:
        if self.electra:
            chosen = batch["labels"] != IGNORE
            return PretrainOutput(
                **electra_forward(model, batch, chosen, self.cfg.sparse_head, self.generator)
            )
        encoder = model.bert(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
        chosen = batch["labels"] != IGNORE
        head = model.cls.predictions
        if self.cfg.sparse_head:  # the decoder runs on the masked rows only
            logits = head(encoder.last_hidden_state[chosen]).float()
        else:
            logits = head(encoder.last_hidden_state)[chosen].float()
        labels = batch["labels"][chosen]
        mlm_loss = F.cross_entropy(logits, labels) if len(labels) else logits.sum() * 0
        out = PretrainOutput(loss=mlm_loss, mlm_loss=mlm_loss, mlm_logits=logits, mlm_labels=labels)
        if "next_sentence_label" in batch:
            nsp_logits = model.cls.seq_relationship(encoder.pooler_output).float()
            out.nsp_logits, out.nsp_loss = (
                nsp_logits,
                F.cross_entropy(nsp_logits, batch["next_sentence_label"]),
            )
            out.loss = mlm_loss + out.nsp_loss
        return out

    def loss(self, outputs: PretrainOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs.loss

    # -- evaluation ---------------------------------------------------------------------------------

    def heldout_features(self, instances: Any) -> list[Any]:
        """The held-out instances scored at each evaluation: a fixed seeded sample of at most
        ``max_eval_instances``."""
        count = min(len(instances), self.cfg.max_eval_instances)
        rows = np.random.default_rng(self.seed).choice(len(instances), count, replace=False)
        return [instances[int(i)] for i in np.sort(rows)]

    @contextlib.contextmanager
    def fixed_masks(self) -> Iterator[Callable[[int], None]]:
        """Mask from a generator seeded afresh, so that every evaluation scores the same tokens; the
        function yielded reseeds it for batch ``k``, so that batch is masked alike whichever process
        scores it."""
        self.generator = torch.Generator()
        try:
            yield lambda k: self.generator.manual_seed(self.seed + k)
        finally:
            self.generator = None


def add_counts(totals: dict, out: PretrainOutput, batch: dict[str, torch.Tensor]) -> None:
    tokens = len(out.mlm_labels)
    totals["tokens"] += tokens
    totals["correct"] += int((out.mlm_logits.argmax(-1) == out.mlm_labels).sum())
    totals["loss"] += float(out.mlm_loss) * tokens
    if out.nsp_logits is not None:
        labels = batch["next_sentence_label"]
        totals["pairs"] += len(labels)
        totals["nsp_correct"] += int((out.nsp_logits.argmax(-1) == labels).sum())
    if out.rtd_logits is not None:
        real = len(out.rtd_labels)
        totals["rtd_tokens"] += real
        totals["rtd_correct"] += int(((out.rtd_logits > 0).float() == out.rtd_labels).sum())
        totals["rtd_loss"] += float(out.rtd_loss) * real
        totals["replaced"] += int(out.rtd_labels.sum())


def pretrain_metrics(totals: dict) -> dict:
    """Token-weighted MLM loss over all masked tokens, its perplexity, accuracies."""
    if not totals["tokens"]:
        raise BertkitError("the held-out instances have no masked token to score")
    loss = totals["loss"] / totals["tokens"]
    metrics = {
        "mlm_accuracy": totals["correct"] / totals["tokens"],
        "mlm_loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "masked_tokens": totals["tokens"],
    }
    if totals["pairs"]:
        metrics["nsp_accuracy"] = totals["nsp_correct"] / totals["pairs"]
    if totals.get("rtd_tokens"):
        metrics["rtd_accuracy"] = totals["rtd_correct"] / totals["rtd_tokens"]
        metrics["rtd_loss"] = totals["rtd_loss"] / totals["rtd_tokens"]
        metrics["replaced_share"] = totals["replaced"] / totals["rtd_tokens"]  # of the real tokens
    return metrics
