"""Extractive question answering (SQuAD v1.1/v2.0, CMRC 2018): a start and an end per window.

Each window holds the whole question and a slice of the context; a context longer than one window is
covered by overlapping windows, none cut. Every question gets its answer from the best span of all its
windows (``decoding.py``), read off the exact characters of its context. Questions without an answer
(SQuAD v2.0) point at [CLS]; the no-answer threshold is tuned on dev after training and kept in
run.yaml.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForQuestionAnswering

from bertkit.config import DataConfig, ModelConfig, option
from bertkit.data.padding import IGNORE, pad, padding_mask
from bertkit.data.readers.squad import read_qa_file
from bertkit.data.windows import Template, owning_windows, window_starts
from bertkit.errors import BertkitError
from bertkit.modeling.load import load_model
from bertkit.records import QaExample
from bertkit.tasks.base import Batch, PredictionWriter, TaskBase, short
from bertkit.tasks.qa.decoding import QaPrediction, SpanDecoder
from bertkit.tasks.qa.metrics import best_null_threshold, cmrc_scores, squad_v1_scores, squad_v2_scores
from bertkit.tasks.qa.writer import SquadPredictionWriter

log = logging.getLogger(__name__)

DEFAULT_DOC_STRIDE = 128  # Hugging Face's run_qa.py default; shrunk to half the room of short windows
CHINESE_SHARE = 0.3  # contexts with more CJK characters than this (of the non-space ones) are Chinese


@dataclass
class QaConfig:
    doc_stride: int | None = option(
        None,
        "OVERLAP in sub-word tokens of consecutive windows over a long context (the meaning of Hugging "
        "Face's run_qa.py; google-research/bert's --doc_stride is the step between window starts "
        "instead, i.e. the context room minus this overlap); must be below a window's context room, "
        "max_length - max_question_length - the special tokens (default None: 128, or half that room "
        "if less)",
        "--doc-stride",
        ge=0,
    )
    max_question_length: int = option(
        64,
        "sub-word tokens of a question kept; longer ones are cut and counted",
        "--max-question-length",
        ge=1,
    )
    max_answer_length: int = option(
        30, "longest answer predicted, in sub-word tokens", "--max-answer-length", ge=1
    )
    n_best: int = option(20, "start and end positions tried per window", "--n-best", ge=1)
    no_answer: str = option(
        "auto",
        "questions may have no answer, SQuAD v2.0 (auto: yes when train has such questions)",
        "--no-answer",
        choices=("auto", "yes", "no"),
    )
    null_threshold: float = option(
        0.0,
        "answer nothing when the no-answer score beats the best span's by more than this (tuned on "
        "dev after training)",
        "--null-threshold",
    )
    metric: str = option(
        "auto",
        "squad: the official v1.1/v2.0 EM and F1 on words; cmrc: CMRC 2018's on Chinese characters; "
        "auto: cmrc when the contexts are mostly Chinese",
        choices=("auto", "squad", "cmrc"),
    )


@dataclass
class QaFeature:
    """One window: [CLS] question [SEP] context slice [SEP], its answer's positions, and where its
    context tokens sit (their character offsets, and the [first, last) range of them it owns)."""

    input_ids: list[int]
    token_type_ids: list[int]
    record: int
    start_position: int | None  # 0 ([CLS]) when the answer is not in this window; None: unlabelled
    end_position: int | None
    context_begin: int
    offsets: list[tuple[int, int]]
    owned_begin: int
    owned_end: int
    context_tokens: int  # sub-words of the whole context


@dataclass
class QaResult:
    """The answer to one question: its text ("" for no answer) and character offsets in the context."""

    id: str
    question: str
    answer: str
    start: int | None
    end: int | None
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        score = None if self.score is None or abs(self.score) == float("inf") else round(self.score, 4)
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "start": self.start,
            "end": self.end,
            "score": score,
        }


class QaTask(TaskBase):
    """Extractive question answering (SQuAD v1.1/v2.0, CMRC 2018)."""

    name = "qa"
    config_class = QaConfig
    model_class = AutoModelForQuestionAnswering
    record_class = QaExample
    predict_io = "SQuAD JSON or JSON lines of id, question, context (the official {id: answer} JSON)"
    input_names = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(
        self,
        cfg: QaConfig,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        super().__init__(cfg, model_cfg, data_cfg, tokenizer, labels)
        if model_cfg.stride != ModelConfig.stride:
            raise BertkitError(
                "qa: windows over a long context overlap by --doc-stride; --stride is not used"
            )
        self.template = Template.of(tokenizer)
        overhead = self.template.pair_overhead
        room = model_cfg.max_length - overhead - cfg.max_question_length
        if room < 2:
            raise BertkitError(
                f"--max-length {model_cfg.max_length} leaves no room for the context after a question of "
                f"--max-question-length {cfg.max_question_length} and {overhead} special tokens"
            )
        if cfg.doc_stride is not None and cfg.doc_stride >= room:
            raise BertkitError(
                f"--doc-stride {cfg.doc_stride} (the overlap of consecutive windows) must be below the "
                f"{room} context tokens a window holds (--max-length {model_cfg.max_length} minus "
                f"--max-question-length {cfg.max_question_length} minus {overhead} special tokens)"
            )
        self.doc_stride = min(DEFAULT_DOC_STRIDE, room // 2) if cfg.doc_stride is None else cfg.doc_stride

    @property
    def allows_no_answer(self) -> bool:
        return self.cfg.no_answer == "yes"

    @property
    def main_metric(self) -> str:
        # with no-answer questions, checkpoints are compared at their best threshold, as calibrated
        return "best_f1" if self.allows_no_answer else "f1"

    @property
    def needs_calibration(self) -> bool:
        return self.allows_no_answer

    def read(self, path: str, *, labelled: bool = True) -> list[QaExample]:
        fmt = self.data_cfg.format
        if fmt not in ("auto", "jsonl"):
            raise BertkitError(f"qa reads SQuAD JSON or JSON lines (--format auto or jsonl), not {fmt!r}")
        return read_qa_file(path, format=fmt, labelled=labelled, on_bad_line=self.data_cfg.on_bad_line)

    def prepare_train(self, train: list[QaExample], seed: int) -> list[QaExample]:
        """Train only on questions whose answer is placed in the context (or that have none)."""
        kept = [r for r in train if r.answers is not None and (r.is_impossible or r.placed)]
        if len(kept) < len(train):
            log.warning(
                "%d of %d training questions have no answer placed in their context (or no answers): "
                "left out of training",
                len(train) - len(kept),
                len(train),
            )
        if not kept:
            raise BertkitError("no training question has an answer placed in its context: nothing to learn")
        return kept

    def setup(self, train: Sequence[QaExample]) -> None:
        """Fix what train decides: whether questions may go unanswered, and how answers are scored."""
        if self.cfg.no_answer == "auto":
            self.cfg.no_answer = "yes" if any(r.is_impossible for r in train) else "no"
        if self.cfg.metric == "auto":
            self.cfg.metric = detect_metric(train)
        log.info("no-answer questions: %s; answers scored the %s way", self.cfg.no_answer, self.cfg.metric)

    # -- records -> features ------------------------------------------------------------------------

    def encode(self, records: Sequence[QaExample]) -> list[QaFeature]:
        """Windows of every question; pure (no logging, no state), so prediction can call it per request."""
        questions = self.question_ids(records)
        contexts = self.context_tokens([r.context for r in records])
        features = []
        for r, record in enumerate(records):
            ids, offsets = contexts[record.context]
            features += self.windows(r, questions[r], ids, offsets, answer_tokens(record, offsets))
        return features

    def question_ids(self, records: Sequence[QaExample]) -> list[list[int]]:
        # verbose=False: transformers warns about long inputs, which windows (contexts) or a cut
        # counted in the log (questions) handle
        ids = self.tokenizer([r.question for r in records], add_special_tokens=False, verbose=False)
        return [q[: self.cfg.max_question_length] for q in ids["input_ids"]]

    def context_tokens(self, contexts: list[str]) -> dict[str, tuple[list[int], list[tuple[int, int]]]]:
        """Sub-word ids and character offsets of each distinct context (SQuAD asks ~5 questions each)."""
        unique = list(dict.fromkeys(contexts))
        enc = self.tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return {
            text: (ids, [(int(a), int(b)) for a, b in offsets])
            for text, ids, offsets in zip(unique, enc["input_ids"], enc["offset_mapping"])
        }

    def windows(
        self,
        r: int,
        question: list[int],
        ids: list[int],
        offsets: list[tuple[int, int]],
        answer: tuple[int, int] | None | str,
    ) -> list[QaFeature]:
        """The windows of one question; ``answer`` is its token span, "none" (no answer), "skip" (an
        answer that no token covers) or None (unlabelled)."""
        room = self.model_cfg.max_length - self.template.pair_overhead - len(question)
        starts = window_starts(len(ids), room, self.doc_stride)
        owners = owning_windows(len(ids), starts, room)
        begin = len(self.template.pair[0]) + len(question) + len(self.template.pair[1])
        features = []
        for w, start in enumerate(starts):
            end = min(start + room, len(ids))
            input_ids, types = self.template.build(question, ids[start:end])
            owned = [p - start for p in range(start, end) if owners[p] == w]
            if answer is None or answer == "skip":
                position: tuple[int | None, int | None] = (None, None) if answer is None else (IGNORE, IGNORE)
            elif isinstance(answer, tuple) and start <= answer[0] and answer[1] < end:
                position = (begin + answer[0] - start, begin + answer[1] - start)
            else:  # no answer, or not in this window: [CLS], as the BERT paper trains it
                position = (0, 0)
            features.append(
                QaFeature(
                    input_ids,
                    types,
                    r,
                    *position,
                    begin,
                    offsets[start:end],
                    owned[0] if owned else 0,
                    owned[-1] + 1 if owned else 0,
                    len(ids),
                )
            )
        return features

    def uncovered(self, records: Sequence[QaExample], features: Sequence[QaFeature]) -> int:
        # measured, not assumed: a context token that no window owns could never start an answer
        tokens = {f.record: f.context_tokens for f in features}
        return sum(tokens.values()) - sum(f.owned_end - f.owned_begin for f in features)

    def describe_encoding(
        self, records: Sequence[QaExample], features: Sequence[QaFeature], split: str
    ) -> None:
        super().describe_encoding(records, features, split)
        lengths = self.tokenizer([r.question for r in records], add_special_tokens=False, verbose=False)
        cut = sum(len(q) > self.cfg.max_question_length for q in lengths["input_ids"])
        if cut:
            log.warning(
                "%s: %d question(s) longer than --max-question-length %d sub-words were cut to it",
                split,
                cut,
                self.cfg.max_question_length,
            )
        found = {f.record for f in features if f.start_position and f.start_position > 0}
        lost = sum(
            1 for r, rec in enumerate(records) if rec.placed and not rec.is_impossible and r not in found
        )
        if lost:
            log.warning(
                "%s: %d answer(s) fit in no window (longer than a window?): not trained on", split, lost
            )
        log.info("%s: %d questions with contexts longer than one window", split, windowed(features))

    def collate(self, features: Sequence[QaFeature]) -> Batch:
        """Dynamic padding; the windows' context bookkeeping rides along for the decoder."""
        ids = [f.input_ids for f in features]
        length = self.batch_length(ids)
        batch = {
            "input_ids": pad(ids, self.tokenizer.pad_token_id or 0, length=length),
            "token_type_ids": pad([f.token_type_ids for f in features], 0, length=length),
            "attention_mask": padding_mask(ids, length),
            "record": [f.record for f in features],
            "context_begin": [f.context_begin for f in features],
            "offsets": [f.offsets for f in features],
            "owned": [(f.owned_begin, f.owned_end) for f in features],
        }
        if all(f.start_position is not None for f in features):
            batch["start_positions"] = torch.tensor([f.start_position for f in features])
            batch["end_positions"] = torch.tensor([f.end_position for f in features])
        return batch

    # -- model ---------------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        return load_model(AutoModelForQuestionAnswering, self.model_cfg)

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        """Mean of the start and end cross-entropies over each window's own positions (not padding)."""
        padding = batch["attention_mask"] == 0
        start = outputs.start_logits.float().masked_fill(padding, -1e4)
        end = outputs.end_logits.float().masked_fill(padding, -1e4)
        starts, ends = batch["start_positions"], batch["end_positions"]
        if bool((starts == IGNORE).all()):
            return start.sum() * 0.0  # nothing to learn from this batch; a mean over nothing is NaN
        start_loss = F.cross_entropy(start, starts, ignore_index=IGNORE)
        return (start_loss + F.cross_entropy(end, ends, ignore_index=IGNORE)) / 2

    # -- features -> predictions ---------------------------------------------------------------------

    def decoder(self, records: Sequence[QaExample], features: Sequence[QaFeature]) -> SpanDecoder:
        return SpanDecoder(
            [r.context for r in records],
            Counter(f.record for f in features),
            self.cfg.n_best,
            self.cfg.max_answer_length,
            self.allows_no_answer,
            self.cfg.null_threshold,
        )

    def require_gold(self, records: Sequence[QaExample]) -> None:
        if any(r.answers is None for r in records):
            path = next(r.path for r in records if r.answers is None)
            raise BertkitError(f"{path}: the file has no answers to evaluate against")

    def metrics(self, predictions: list[QaPrediction], records: Sequence[QaExample]) -> dict:
        """The official EM/F1 of the data's kind: SQuAD v1.1, v2.0 (with no-answer questions) or CMRC."""
        self.require_gold(records)
        gold = {r.id: [a.text for a in r.answers or ()] for r in records}
        answers = {r.id: p.text for r, p in zip(records, predictions)}
        metric = self.cfg.metric if self.cfg.metric != "auto" else detect_metric(records)
        if metric == "cmrc":
            return cmrc_scores(gold, answers)
        if self.allows_no_answer or any(r.is_impossible for r in records):
            margins = {r.id: p.null_margin for r, p in zip(records, predictions)}
            best = {r.id: p.best_text for r, p in zip(records, predictions)}
            return squad_v2_scores(gold, answers, margins, best)
        return squad_v1_scores(gold, answers)

    def calibrate(self, predictions: list[QaPrediction], records: Sequence[QaExample]) -> None:
        """The no-answer threshold with the best dev F1 (SQuAD v2.0's best_f1_thresh)."""
        if not self.allows_no_answer:
            return
        gold = {r.id: [a.text for a in r.answers or ()] for r in records}
        margins = {r.id: p.null_margin for r, p in zip(records, predictions)}
        best = {r.id: p.best_text for r, p in zip(records, predictions)}
        # not rounded: the threshold sits exactly on a question's margin, which rounding could cross
        self.cfg.null_threshold = float(best_null_threshold(gold, best, margins))
        log.info("no-answer threshold tuned on dev: %s", self.cfg.null_threshold)

    # -- outputs -------------------------------------------------------------------------------------

    def to_record(self, item: Any) -> QaExample:
        """A ``(question, context)`` tuple, a ``{"question", "context"[, "id"]}`` mapping, or a QaExample."""
        if isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, str) for t in item):
            item = QaExample(id="", question=item[0], context=item[1])
        elif isinstance(item, dict) and isinstance(item.get("question"), str):
            if not isinstance(item.get("context"), str):
                raise BertkitError(f"qa: a question needs a context string, got {short(item)}")
            item = QaExample(id=str(item.get("id", "")), question=item["question"], context=item["context"])
        return super().to_record(item)

    def result(self, record: QaExample, prediction: QaPrediction) -> QaResult:
        return QaResult(
            record.id, record.question, prediction.text, prediction.start, prediction.end, prediction.score
        )

    def prediction_writer(self, src: str, out: str) -> PredictionWriter:
        """``predictions.json`` in the official format: ``{question_id: answer_text}``."""
        return SquadPredictionWriter(out)


def answer_tokens(record: QaExample, offsets: list[tuple[int, int]]) -> tuple[int, int] | None | str:
    """The first and last sub-word of the record's first placed answer that tokens cover; "none" for a
    question without an answer, "skip" when no answer can be found in tokens, None when unlabelled."""
    if record.answers is None:
        return None
    if record.is_impossible:
        return "none"
    for answer in record.placed:
        span = char_span_to_tokens(offsets, answer.start, answer.end)
        if span is not None:
            return span
    return "skip"


def char_span_to_tokens(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The first and last token overlapping the characters [start, end) (None if no token does: the
    span is only spaces or characters the tokenizer drops)."""
    first = bisect_right([e for _, e in offsets], start)
    last = bisect_left([s for s, _ in offsets], end) - 1
    return (first, last) if first <= last else None


def windowed(features: Sequence[QaFeature]) -> int:
    return sum(n > 1 for n in Counter(f.record for f in features).values())


def detect_metric(records: Sequence[QaExample], sample: int = 200) -> str:
    """``cmrc`` when the contexts are mostly Chinese characters, else ``squad``."""
    contexts = list(dict.fromkeys(r.context for r in records))[:sample]
    chars = [c for text in contexts for c in text if not c.isspace()]
    chinese = sum(1 for c in chars if "\u4e00" <= c <= "\u9fff")
    return "cmrc" if chars and chinese / len(chars) > CHINESE_SHARE else "squad"
