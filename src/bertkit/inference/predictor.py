"""Batched prediction from a saved model: the Python API (``bertkit.load(DIR).predict``) and files.

A ``Predictor`` is safe to call again and again from one process (a server does): a call changes no
state, prints nothing, and returns one result dataclass (with ``to_dict()``) per input, in order.
A model directory written by bertkit carries ``run.yaml``; a plain Hugging Face directory works too
(the task is then read off the architecture in ``config.json``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig

from bertkit.config import RunConfig, build_config, load_yaml
from bertkit.errors import BertkitError, InputLimitError, require_records
from bertkit.inference.evaluation import predict_features
from bertkit.inference.onnx_engine import ENGINES, OnnxModel
from bertkit.modeling.export import ONNX_FILE, quantize_torch_int8
from bertkit.modeling.load import load_tokenizer
from bertkit.tasks import TASKS, make_task
from bertkit.tasks.base import PredictionTask, Result
from bertkit.training.runtime import Runtime, make_runtime, thread_count

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")


@dataclass(frozen=True)
class Limits:
    """Bounds on one ``predict`` call; None is unbounded (a server sets them)."""

    max_inputs: int | None = None
    max_chars: int | None = None  # per input, all its texts together


class Predictor:
    """A fine-tuned model ready to predict: ``Predictor.load(DIR).predict(["text", ...])``."""

    def __init__(
        self,
        task: PredictionTask,
        model: Any,
        runtime: Runtime,
        batch_size: int = 64,
        limits: Limits = Limits(),
    ):
        self.task, self.model, self.runtime = task, model, runtime
        self.batch_size, self.limits = batch_size, limits
        self.model.to(runtime.device).eval()

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        precision: str = "auto",
        batch_size: int = 64,
        threads: int = 0,
        limits: Limits = Limits(),
        engine: str = "torch",
        task_options: dict[str, Any] | None = None,
        adapt_threads: bool | None = None,
    ) -> Predictor:
        """``engine`` "torch" runs the saved weights (``precision`` auto, fp32, bf16 or int8); "onnx"
        runs what ``bertkit export`` wrote (``precision`` auto or fp32: model.onnx; int8: model.int8.onnx).
        ``task_options`` override fields of the task's config section (``{"num_beams": 1}`` for seq2seq).
        ``adapt_threads`` True starts the process's thread governor (fewer torch threads while other
        processes keep the cores busy), False stops it; None, the default, leaves it as it is, so that a
        predictor loaded inside a training run keeps the run's governor. onnxruntime's threads are its own."""
        if batch_size < 1:
            raise BertkitError(f"batch size must be at least 1, got {batch_size}")
        if engine not in ENGINES:
            raise BertkitError(f"engine must be one of {ENGINES}, got {engine!r}")
        if precision not in PRECISIONS:
            raise BertkitError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        cfg = saved_run_config(model_dir, task_options)
        tokenizer = load_tokenizer(cfg.model)
        id2label = hf_labels(model_dir)
        task = make_task(cfg, tokenizer, [id2label[i] for i in sorted(id2label)])
        if engine == "onnx" or precision == "int8":
            # onnxruntime and torch's int8 kernels run on the CPU, in fp32 around the int8 matmuls
            governed = adapt_threads if engine == "torch" else None
            runtime = dataclasses.replace(make_runtime("fp32", threads, governed), device=torch.device("cpu"))
        else:
            runtime = make_runtime(precision, threads, adapt_threads)
        if engine == "onnx":
            model = OnnxModel.load(model_dir, precision, thread_count(threads))
        else:
            model = task.model_class.from_pretrained(
                str(require_weights(Path(model_dir))), trust_remote_code=False, weights_only=True
            )
            if precision == "int8":
                model = quantize_torch_int8(model)
            elif runtime.precision == "bf16" and task.bf16_weights:
                model = model.to(torch.bfloat16)
        return cls(task, model, runtime, batch_size, limits)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model's inputs, in the order the task feeds them."""
        return self.task.input_names

    def predict(self, inputs: Sequence[Any]) -> list[Result]:
        """One result per input, in order: entities with character offsets (NER), label and class
        probabilities (classify). An input is a text, or what the task takes (a ``(text, pair)``
        tuple, a list of tokens, a mapping like ``{"text": ...}``, or a record)."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise BertkitError(
                f"predict takes a list of inputs, got {type(inputs).__name__}; for one text pass [text]"
            )
        if self.limits.max_inputs is not None and len(inputs) > self.limits.max_inputs:
            raise InputLimitError(
                "max_inputs", f"{len(inputs)} inputs in one call; the limit is {self.limits.max_inputs}"
            )
        records = []
        for i, item in enumerate(inputs):
            if item is None:
                raise BertkitError(f"input {i} is None")
            records.append(self.task.to_record(item))
            self.check_size(i, records[-1])
        predictions = self.predict_records(records)
        return [self.task.result(r, p) for r, p in zip(records, predictions)]

    def check_size(self, index: int, record: Any) -> None:
        limit = self.limits.max_chars
        if limit is not None and (size := record_chars(record)) > limit:
            raise InputLimitError("max_chars", f"input {index} has {size} characters; the limit is {limit}")

    def predict_records(self, records: Sequence[Any], desc: str | None = None) -> list[Any]:
        if not records:
            return []
        features = self.task.encode(records)
        return predict_features(self.model, self.task, records, features, self.runtime, self.batch_size, desc)

    def evaluate(self, path: str) -> dict:
        """Metrics of the model on a labelled file."""
        records = require_records(self.task.read(require_file(path, "data")), path)
        self.task.require_gold(records)  # before the pass over the file, not after it
        features = self.task.encode(records)
        self.task.describe_encoding(records, features, path)
        predictions = predict_features(
            self.model, self.task, records, features, self.runtime, self.batch_size, "evaluate"
        )
        return self.task.metrics(predictions, records)

    def predict_file(self, path: str, out: str) -> int:
        """Predict every record of ``path`` into ``out``, chunk by chunk; returns the record count.

        The output is written as predictions arrive and renamed into place when complete, so memory
        stays bounded by a chunk and a crash leaves no half-written file.
        """
        records = self.task.read(require_file(path, "input"), labelled=False)
        with (
            self.task.prediction_writer(path, out) as writer,
            tqdm(total=len(records), desc="predict", unit="record", leave=False) as bar,
        ):
            for part in chunks(records, self.task.predict_chunk):
                for record, prediction in zip(part, self.predict_records(part)):
                    writer.write(record, prediction)
                bar.update(len(part))
        return len(records)


def load(model_dir: str | Path, **kwargs: Any) -> Predictor:
    """``bertkit.load(DIR)``: the model saved in DIR, ready to ``.predict(inputs)``."""
    return Predictor.load(model_dir, **kwargs)


def require_file(path: str, role: str) -> str:
    if not Path(path).is_file():
        what = "a directory, not a file" if Path(path).is_dir() else "no such file"
        raise BertkitError(f"{path}: {what} (the --{role} file)")
    return path


def chunks(records: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of about ``size`` records, never cutting a document (its sentences may
    serve as each other's context)."""
    begin = 0
    while begin < len(records):
        end = min(begin + size, len(records))
        doc = getattr(records[end - 1], "doc_id", None)
        while end < len(records) and doc is not None and getattr(records[end], "doc_id", None) == doc:
            end += 1
        yield records[begin:end]
        begin = end


# string fields that say where a record comes from or what it is labelled, not text the model reads
NOT_TEXT = frozenset({"path", "id", "label", "tags"})


def record_chars(record: Any) -> int:
    """Characters of all the texts of a record (its string fields and lists of strings); tokens cut out
    of a raw ``text`` are that text, counted once."""
    total = 0
    has_text = isinstance(getattr(record, "text", None), str)
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if field.name in NOT_TEXT or (field.name == "tokens" and has_text):
            continue
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list) and value and isinstance(value[0], str):
            total += sum(len(v) for v in value)
    return total


def require_weights(model_dir: Path) -> Path:
    """``model_dir``, refused with advice when it holds an ONNX export but no PyTorch weights."""
    weights = [*model_dir.glob("*.safetensors"), *model_dir.glob("*.bin")]
    if not weights and (model_dir / ONNX_FILE).is_file():
        raise BertkitError(f"{model_dir} holds an ONNX export and no PyTorch weights; pass --engine onnx")
    return model_dir


def saved_run_config(model_dir: str | Path, task_options: dict[str, Any] | None = None) -> RunConfig:
    """The config the model was trained with, pointed at ``model_dir``; inferred for plain HF models.
    ``task_options`` override fields of the task's section."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise BertkitError(f"{model_dir}: not a model directory (no config.json)")
    run_yaml = model_dir / "run.yaml"
    overrides = load_yaml(run_yaml) if run_yaml.is_file() else {}
    task_name = overrides.pop("task", None) or task_from_architecture(model_dir)
    if task_name not in TASKS:
        raise BertkitError(f"{model_dir}: unknown task {task_name!r}")
    for section in ("data", "train", "output"):
        overrides.pop(section, None)  # where it was trained from does not matter for predicting
    model = overrides.setdefault("model", {})
    keep = {"max_length", "stride"}
    overrides["model"] = {k: v for k, v in model.items() if k in keep}
    overrides["model"]["name_or_path"] = str(model_dir)
    if task_options:
        overrides[task_name] = {**(overrides.get(task_name) or {}), **task_options}
    return build_config(task_name, TASKS[task_name].config_class, overrides)


def task_from_architecture(model_dir: Path) -> str:
    """The family whose model class heads this architecture (``BertForTokenClassification`` -> ner)."""
    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    for arch in config.architectures or []:
        for name, task_cls in TASKS.items():
            if arch.endswith(task_cls.model_class.__name__.removeprefix("AutoModel")):
                return name
    raise BertkitError(f"{model_dir}: cannot tell the task from architectures {config.architectures}")


def hf_labels(model_dir: str | Path) -> dict[int, str]:
    config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    return {int(k): v for k, v in config.id2label.items()}
