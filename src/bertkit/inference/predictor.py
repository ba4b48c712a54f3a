"""Batched prediction from a saved model: Python API (``bertkit.load(DIR).predict``) and files.

A model directory written by bertkit carries ``run.yaml``; a plain Hugging Face token-classification
directory works too (the task and tag scheme are then read off ``config.json``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import AutoConfig

from bertkit.config import RunConfig, build_config, load_yaml
from bertkit.data.tagschemes import detect_scheme
from bertkit.errors import BertkitError
from bertkit.inference.evaluation import predict_features
from bertkit.modeling.load import load_tokenizer
from bertkit.tasks import TASKS, make_task
from bertkit.training.runtime import make_runtime

log = logging.getLogger(__name__)

ARCHITECTURE_TASKS = {"ForTokenClassification": "ner", "ForSequenceClassification": "classify"}


class Predictor:
    """A fine-tuned model ready to predict: ``Predictor.load(DIR).predict(["text", ...])``."""

    def __init__(self, task: Any, model: Any, runtime: Any, batch_size: int = 64):
        self.task, self.model, self.runtime, self.batch_size = task, model, runtime, batch_size

    @classmethod
    def load(cls, model_dir: str | Path, precision: str = "auto", batch_size: int = 64) -> Predictor:
        cfg = saved_run_config(model_dir)
        tokenizer = load_tokenizer(cfg.model)
        id2label = hf_labels(model_dir)
        labels = [id2label[i] for i in sorted(id2label)]
        if cfg.task_name == "ner" and cfg.task.tag_scheme == "auto":
            cfg.task.tag_scheme = detect_scheme([labels])
        task = make_task(cfg, tokenizer, labels)
        model = task.model_class.from_pretrained(str(model_dir))
        return cls(task, model, make_runtime(precision), batch_size)

    def predict_records(self, records: list[Any], desc: str = "predict") -> list[Any]:
        features = self.task.encode(records)
        return predict_features(self.model, self.task, records, features, self.runtime, self.batch_size, desc)

    def predict(self, texts: list[str]) -> list[Any]:
        """One result per text: entities with character offsets (NER), label and probabilities (classify)."""
        records = self.task.text_records(texts)
        return [self.task.to_api(r, p) for r, p in zip(records, self.predict_records(records))]

    def evaluate(self, path: str) -> dict:
        records = self.task.read(path)
        return self.task.metrics(self.predict_records(records, "evaluate"), records)

    def predict_file(self, path: str, out: str) -> int:
        """Predict every record of ``path`` and write them to ``out``; returns the record count."""
        records = self.task.read(path, labelled=False)
        self.task.write_predictions(path, out, records, self.predict_records(records))
        return len(records)


def load(model_dir: str | Path, **kwargs: Any) -> Predictor:
    """``bertkit.load(DIR)``: the model saved in DIR, ready to ``.predict(texts)``."""
    return Predictor.load(model_dir, **kwargs)


def saved_run_config(model_dir: str | Path) -> RunConfig:
    """The config the model was trained with, pointed at ``model_dir``; inferred for plain HF models."""
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
    cfg = build_config(task_name, TASKS[task_name].config_class, overrides)
    return cfg


def task_from_architecture(model_dir: Path) -> str:
    config = AutoConfig.from_pretrained(str(model_dir))
    for arch in config.architectures or []:
        for suffix, task in ARCHITECTURE_TASKS.items():
            if arch.endswith(suffix):
                return task
    raise BertkitError(f"{model_dir}: cannot tell the task from architectures {config.architectures}")


def hf_labels(model_dir: str | Path) -> dict[int, str]:
    return {int(k): v for k, v in AutoConfig.from_pretrained(str(model_dir)).id2label.items()}
