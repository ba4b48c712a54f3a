"""Where training stands, and what a checkpoint must match to be resumed.

``LoopState`` is saved with every checkpoint. A run fingerprint (the config fields that shape training
and the identity of the data files) is saved next to it; a resume whose fingerprint differs is refused
with the fields that differ, old and new, instead of silently skipping the wrong batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.config import RunConfig
from bertkit.errors import BertkitError

# train fields that change which batches come, how big the steps are, or how many there are; the rest
# (threads, logging, evaluation and saving cadence, patience, precision) may change on resume
TRAIN_FIELDS = (
    "epochs",
    "max_steps",
    "lr",
    "batch_size",
    "grad_accum",
    "weight_decay",
    "warmup_ratio",
    "max_grad_norm",
    "seed",
    "compact_embeddings",  # the optimizer state's shape
)
# fingerprint fields added after checkpoints were written without them, with the value that gives the
# behaviour those runs had: an old checkpoint resumes with that value given
ADDED_LATER = {"train.compact_embeddings": False, "classify.first_token_top": False}
MODEL_EXCLUDED = ("trust_remote_code",)
DATA_FIELDS = ("format", "on_bad_line", "dev_fraction")


@dataclass
class LoopState:
    """Where training stands; saved with every checkpoint so a resumed run skips consumed batches."""

    epoch: int = 0
    batch_in_epoch: int = 0  # the read position in the feature source, with ``epoch``
    step: int = 0
    total_steps: int = 0  # the scheduler's length, restored as saved rather than recomputed
    examples: int = 0
    train_seconds: float = 0.0
    smoothed_loss: float | None = None  # the loss the log shows, smoothed over the steps before
    best_metric: float | None = None
    best_step: int = 0
    evals_without_gain: int = 0
    stopped_early: bool = False
    source: str = ""  # fingerprint of the training features this position is in
    history: list[dict] = field(default_factory=list)

    def throughput(self) -> dict[str, float]:
        """The train_end fields every recipe logs: steps, examples, seconds and examples per second."""
        return {
            "steps": self.step,
            "train_seconds": self.train_seconds,
            "train_examples": self.examples,
            "train_examples_per_s": self.examples / max(self.train_seconds, 1e-9),
        }


def run_fingerprint(cfg: RunConfig, files: dict[str, str]) -> dict[str, Any]:
    """The config fields that shape training, and size + sha256 of each data file that does (``files``)."""
    out: dict[str, Any] = {"task": cfg.task_name}
    out.update({f"train.{name}": getattr(cfg.train, name) for name in TRAIN_FIELDS})
    out.update({f"data.{name}": getattr(cfg.data, name) for name in DATA_FIELDS})
    for name, value in dataclasses.asdict(cfg.model).items():
        if name not in MODEL_EXCLUDED:
            out[f"model.{name}"] = local_path(value) if name == "name_or_path" else value
    if not (cfg.model.freeze_embeddings or cfg.model.freeze_layers):  # they matter only with frozen layers
        out.pop("model.cache_frozen")
        out.pop("model.frozen_dropout")
    if cfg.model.peft == "none":  # the adapter options matter only with adapters (and old runs had none)
        out.pop("model.peft")
    else:
        out.update({f"lora.{k}": v for k, v in dataclasses.asdict(cfg.lora).items()})
    out.update(task_fields(cfg))
    out.update({f"file.{split}": file_identity(path) for split, path in files.items()})
    return out


def task_fields(cfg: RunConfig) -> dict[str, Any]:
    return {f"{cfg.task_name}.{k}": v for k, v in dataclasses.asdict(cfg.task).items()}


def with_resolved(fingerprint: dict[str, Any], cfg: RunConfig) -> dict[str, Any]:
    """``fingerprint`` with the task fields the task has since fixed from the training data (``auto``
    tag scheme -> ``iob2``, entity types, control codes, ...) under ``resolved``: run.yaml writes those
    values, so that a resume from it (``--resume DIR`` alone) matches them as well as the given ones."""
    resolved = {k: v for k, v in task_fields(cfg).items() if fingerprint.get(k) != v}
    return {**fingerprint, "resolved": resolved} if resolved else fingerprint


def local_path(value: Any) -> Any:
    """A local model directory by its absolute path (a relative and an absolute spelling are one run)."""
    return str(Path(value).resolve()) if isinstance(value, str) and Path(value).exists() else value


def file_identity(path: str | Path) -> str:
    """``size bytes, sha256 ...`` of a file, read in chunks (large corpora never sit in memory)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return f"{size} bytes, sha256 {digest.hexdigest()[:16]}"


def fingerprint_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One ``name: saved -> current`` line per field that differs (a missing field counts as differing,
    but for one added since, which takes the value that reproduces the runs made before it). A field
    the saved run resolved from its data matches as given or as resolved."""
    resolved = saved.get("resolved", {})
    names = sorted((set(saved) | set(current)) - {"resolved"})

    def value(fingerprint: dict[str, Any], name: str) -> Any:
        return fingerprint.get(name, ADDED_LATER.get(name, "(absent)"))

    return [
        f"{name}: {value(saved, name)!r} in the checkpoint, {value(current, name)!r} now"
        for name in names
        if value(saved, name) != value(current, name)
        and not (name in resolved and resolved[name] == current.get(name))
    ]


def check_fingerprint(where: str | Path, saved: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse a resume whose run differs from the checkpoint's, naming what differs."""
    if saved is None:
        raise BertkitError(f"{where}: the checkpoint has no run fingerprint (written by an older bertkit)")
    diffs = fingerprint_differences(saved, current)
    if diffs:
        raise BertkitError(
            f"{where}: cannot resume, this run differs from the checkpoint's: " + "; ".join(diffs)
        )
