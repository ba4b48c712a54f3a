"""The Task protocol, split by the job that needs each part, and ``TaskBase`` with its default hooks.

A task family knows its data and its head; the loop knows neither. Training uses ``TrainingTask``,
evaluation adds ``EvaluationTask``, prediction adds ``PredictionTask``. ``TaskBase`` gives every
optional hook a default, so a new family writes only what it uses: ``read``, ``encode``, ``collate``,
``build_model``, ``decoder`` and ``metrics`` (plus ``to_record``/``result`` to serve predictions).
``encode`` and the decoder are inverse: every record comes back with exactly one prediction, however
many windows it was split into.
"""

from __future__ import annotations

import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol

import torch

from bertkit.atomic import atomic_path
from bertkit.config import DataConfig, ModelConfig
from bertkit.data.padding import batch_length
from bertkit.errors import BertkitError
from bertkit.modeling.lora import head_modules

log = logging.getLogger(__name__)

Batch = dict[str, Any]
# a tokenizer whose training text is more than this share [UNK] cannot learn from it (e.g. the 5-token
# vocabulary transformers 5 gives for `BertTokenizer(vocab_file=...)`); real vocabularies stay under 1%
HIGH_UNK_RATE = 0.1


class Decoder(Protocol):
    """Collects model outputs batch by batch and turns them into one prediction per record."""

    def add(self, outputs: Any, batch: Batch) -> None: ...

    def predictions(self) -> list[Any]: ...


class Result(Protocol):
    """What the Python API returns for one input: a dataclass that turns into JSON-ready data."""

    def to_dict(self) -> dict[str, Any]: ...


class TrainingTask(Protocol):
    """What ``fit()`` and the fine-tuning recipe need."""

    name: str
    main_metric: str  # the dev metric that picks the best checkpoint and drives early stopping
    greater_is_better: bool  # False for losses and perplexities

    def read(self, path: str, *, labelled: bool = True) -> list[Any]: ...

    def prepare_tokenizer(self, tokenizer: Any) -> None: ...

    def setup(self, train: Sequence[Any]) -> None: ...

    def saved_tokenizer(self, tokenizer: Any) -> Any: ...

    def saved_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor] | None: ...

    def trained_whole(self, model: torch.nn.Module) -> list[str]: ...

    def prepare_train(self, train: list[Any], seed: int) -> list[Any]: ...

    def encode(self, records: Sequence[Any]) -> list[Any]: ...

    def collate(self, features: Sequence[Any]) -> Batch: ...

    def build_model(self) -> torch.nn.Module: ...

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any: ...

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor: ...


class EvaluationTask(TrainingTask, Protocol):
    """What evaluation adds: outputs at inference time, decoding back to records, and the metrics."""

    def predict_step(self, model: torch.nn.Module, batch: Batch) -> Any: ...

    def decoder(self, records: Sequence[Any], features: Sequence[Any]) -> Decoder: ...

    def metrics(self, predictions: list[Any], records: Sequence[Any]) -> dict: ...

    def require_gold(self, records: Sequence[Any]) -> None: ...


class PredictionTask(EvaluationTask, Protocol):
    """What prediction adds: records from API inputs, results, and a prediction file writer."""

    input_names: tuple[str, ...]  # the model's inputs, in order (what an ONNX export declares)

    def to_record(self, item: Any) -> Any: ...

    def result(self, record: Any, prediction: Any) -> Result: ...

    def prediction_writer(self, src: str, out: str) -> PredictionWriter: ...


Task = PredictionTask  # a complete family: what the registry holds


class TaskBase:
    """Defaults for every optional hook of the protocol; subclass and write what the family needs."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    model_class: ClassVar[Any]  # the transformers Auto class that loads a saved model of this task
    record_class: ClassVar[type]  # what ``read`` returns and ``to_record`` accepts as it is
    predict_io: ClassVar[str]  # what ``predict --input`` reads and what it writes, for --help
    main_metric: str = "loss"
    greater_is_better: bool = True
    needs_calibration: bool = False  # whether ``calibrate`` must see dev predictions after training
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    predict_chunk: int = 2048  # records predicted and written at a time: bounds memory on large files
    # a saved model predicting in bf16 holds bf16 weights rather than casting them at every call: what
    # pays for a generating family, whose hundreds of small decoding steps each re-cast the weights
    bf16_weights: bool = False
    exportable: bool = True  # one forward pass per batch, so ONNX can hold the whole model

    def __init__(
        self,
        cfg: Any,
        model_cfg: ModelConfig,
        data_cfg: DataConfig,
        tokenizer: Any,
        labels: list[str] | None = None,
    ):
        self.cfg, self.model_cfg, self.data_cfg, self.tokenizer = cfg, model_cfg, data_cfg, tokenizer
        self.labels = labels

    def batch_length(self, rows: Sequence[Sequence[int]]) -> int:
        """The length a batch of ``rows`` is padded to (``--model.pad_multiple``, within the window)."""
        return batch_length(rows, self.model_cfg.pad_multiple, self.model_cfg.max_length)

    # -- training -----------------------------------------------------------------------------------

    def prepare_tokenizer(self, tokenizer: Any) -> None:
        """Extend the tokenizer before the model is built (e.g. entity markers); the embeddings follow."""

    def setup(self, train: Sequence[Any]) -> None:
        """Learn what the training data fixes: label set, class weights, scales."""

    def saved_tokenizer(self, tokenizer: Any) -> Any:
        """What is saved with the model as its tokenizer (a family with a second vocabulary adds it)."""
        return tokenizer

    def saved_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """The weights saved with the model, when not its own state dict (None: its own)."""
        return None

    def trained_whole(self, model: torch.nn.Module) -> list[str]:
        """Modules that LoRA trains in full rather than adapting: the weights this task adds to the
        pretrained model (by default its head); peft matches them by the end of their names."""
        return head_modules(model)

    def prepare_train(self, train: list[Any], seed: int) -> list[Any]:
        """The training records as trained on (augmented copies, for instance); by default unchanged."""
        return train

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any:
        return model(**{name: batch[name] for name in self.input_names if name in batch})

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor:
        return outputs.loss

    # -- evaluation ---------------------------------------------------------------------------------

    def predict_step(self, model: torch.nn.Module, batch: Batch) -> Any:
        """The outputs the decoder reads; a generating family runs its search here."""
        return self.forward(model, batch)

    def selection(
        self, records: Sequence[Any], features: Sequence[Any]
    ) -> tuple[Any, Sequence[Any], Sequence[Any]]:
        """The task, records and features that dev evaluation during training scores (a generating
        family scores its loss, or a subset); by default this task on all of dev."""
        return self, records, features

    def baseline(self, train: Sequence[Any], records: Sequence[Any]) -> dict | None:
        """Scores of a model that learned only the priors of train, when that means something."""
        return None

    def calibrate(self, predictions: list[Any], records: Sequence[Any]) -> None:
        """Tune decision settings on dev predictions after training (see ``needs_calibration``)."""

    def uncovered(self, records: Sequence[Any], features: Sequence[Any]) -> int:
        """Inputs of ``records`` that no feature covers: 0 unless windowing is broken."""
        return 0

    def require_gold(self, records: Sequence[Any]) -> None:
        """Raise when ``records`` lack what ``metrics`` scores against (checked before predicting)."""

    def window_count(self, features: Sequence[Any]) -> int:
        """How many encoder windows ``features`` make: one each, unless a feature holds several."""
        return len(features)

    def describe_encoding(self, records: Sequence[Any], features: Sequence[Any], split: str) -> None:
        """Log once per split what encoding made of it, and warn about a tokenizer that cannot read it."""
        rate = unk_rate(features, self.tokenizer)
        log.info(
            "%s: %d records, %d windows (%d inputs left without a window), [UNK] %.2f%% of sub-words",
            split,
            len(records),
            self.window_count(features),
            self.uncovered(records, features),
            100 * rate,
        )
        if rate > HIGH_UNK_RATE:
            log.warning(
                "%s: %.0f%% of the sub-words are [UNK]: the tokenizer does not fit this text (a vocabulary "
                "of a few tokens, another language, or a lowercase vocabulary on cased text?)",
                split,
                100 * rate,
            )

    # -- prediction ---------------------------------------------------------------------------------

    def to_record(self, item: Any) -> Any:
        """One API input as a record: a record as it is; families accept their plain shapes too."""
        if isinstance(item, self.record_class):
            return item
        raise BertkitError(
            f"{self.name}: cannot predict {type(item).__name__} {short(item)}; "
            f"expected a {self.record_class.__name__}"
        )

    def prediction_writer(self, src: str, out: str) -> PredictionWriter:
        """JSON lines, one ``result(...).to_dict()`` per record with the record's input line."""
        return JsonLinesWriter(out, self)


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unk_rate(features: Iterable[Any], tokenizer: Any) -> float:
    """Share of the non-special sub-words of ``features`` that are ``[UNK]``."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return 0.0
    special = set(tokenizer.all_special_ids) - {unk}
    total = unknown = 0
    for feature in features:
        ids = feature.input_ids
        total += sum(1 for i in ids if i not in special)
        unknown += sum(1 for i in ids if i == unk)
    return unknown / total if total else 0.0


class WindowDecoder(ABC):
    """Shared bookkeeping of decoders: window outputs are gathered per record, and a record's
    prediction is made as soon as its last window is seen, so pending state stays small.

    Subclasses say what one window contributes (``window_outputs``), how it is kept (``collect``),
    and how a record's prediction is made (``finish``); ``empty`` is the prediction of a record that
    has no window at all (an empty sentence).
    """

    def __init__(self, windows_per_record: Counter, n_records: int):
        self.remaining = dict(windows_per_record)
        self.results: list[Any] = [None] * n_records
        self.done = [False] * n_records
        for record in range(n_records):
            if not windows_per_record.get(record):
                self.results[record], self.done[record] = self.empty(record), True

    def add(self, outputs: Any, batch: Batch) -> None:
        for record, payload in zip(batch["record"], self.window_outputs(outputs, batch)):
            self.collect(record, payload)
            self.remaining[record] -= 1
            if self.remaining[record] == 0:
                self.results[record], self.done[record] = self.finish(record), True

    def predictions(self) -> list[Any]:
        missing = [r for r, done in enumerate(self.done) if not done]
        if missing:
            raise RuntimeError(f"no prediction for {len(missing)} record(s), e.g. #{missing[0]}")
        return self.results

    @abstractmethod
    def window_outputs(self, outputs: Any, batch: Batch) -> Sequence[Any]:
        """One payload per row of the batch."""

    @abstractmethod
    def collect(self, record: int, payload: Any) -> None: ...

    @abstractmethod
    def finish(self, record: int) -> Any: ...

    def empty(self, record: int) -> Any:
        raise RuntimeError(f"record #{record} has no window")


class PredictionWriter(Protocol):
    def write(self, record: Any, prediction: Any) -> None: ...

    def __enter__(self) -> PredictionWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class JsonLinesWriter:
    """Writes one JSON object per record as predictions arrive; the file appears only when complete.

    Each row starts with the record's input line, so rows stay matched to the input even when
    ``--on-bad-line warn`` skipped some.
    """

    def __init__(self, out: str, task: TaskBase):
        self.out, self.task = out, task
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> JsonLinesWriter:
        tmp = self._stack.enter_context(atomic_path(self.out))
        self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))
        return self

    def write(self, record: Any, prediction: Any) -> None:
        row = {"line": getattr(record, "line", None), **self.task.result(record, prediction).to_dict()}
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
