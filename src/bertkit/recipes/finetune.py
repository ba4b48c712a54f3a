"""The fine-tuning recipe: read data, score the untrained head, train, keep the best, score again.

Writes to the output directory: the best model in the Hugging Face layout, ``run.yaml`` (the resolved
config, enough to repeat the run), ``metrics.json`` (before/after), ``train_log.jsonl``, ``curves.png``
and ``checkpoint/`` (the training state for ``--resume``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bertkit.atomic import write_json, write_text
from bertkit.config import RunConfig
from bertkit.data import registry as datasets
from bertkit.errors import BertkitError
from bertkit.inference.evaluation import evaluate_records, predict_features
from bertkit.modeling.load import load_tokenizer
from bertkit.reporting.plots import plot_confusion, plot_curves
from bertkit.reporting.tables import format_table
from bertkit.tasks import make_task
from bertkit.training.checkpoint import load_weights, save_model
from bertkit.training.loop import TrainLog, fit
from bertkit.training.runtime import make_runtime, seed_everything

log = logging.getLogger(__name__)


def finetune(cfg: RunConfig, on_eval: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Run the whole recipe for ``cfg``; return the metrics written to ``metrics.json``.

    ``on_eval(step, dev_metrics)`` is called after each dev evaluation (and may raise to stop the run).
    """
    started = time.perf_counter()
    out = require_out_dir(cfg)
    resume_from = checkpoint_to_resume(cfg)
    paths = data_paths(cfg)
    runtime = make_runtime(cfg.train.precision, cfg.train.threads)
    tokenizer = load_tokenizer(cfg.model)
    task = make_task(cfg, tokenizer)
    train = task.read(paths["train"])
    dev = None
    if not paths.get("dev"):
        train, dev = split_dev(train, cfg.data.dev_fraction, cfg.train.seed)
    train = task.augment_train(train, cfg.train.seed)  # after the split: no copy of a dev text in train
    task.setup(train)
    # dev and test are read against train's label set, so a label train never saw is caught at its line
    dev = task.read(paths["dev"]) if dev is None else dev
    test = task.read(paths["test"]) if paths.get("test") else None
    write_text(out / "run.yaml", repeatable(cfg).to_yaml())
    train_features = task.encode(train)
    truncated = task.uncovered
    dev_features = task.encode(dev)
    eval_records = test if test is not None else dev
    eval_split = "test" if test is not None else "dev"
    eval_batch = cfg.train.batch_size * 2

    seed_everything(cfg.train.seed)
    model = task.build_model()
    metrics = previous_metrics(out) if resume_from else {}
    if "before" not in metrics:
        metrics = {
            "split": eval_split,
            "before": evaluate_records(
                model, task, eval_records, runtime, eval_batch, desc=f"{eval_split} (before)"
            ),
        }
        write_json(out / "metrics.json", metrics)

    train_log = TrainLog(out / "train_log.jsonl")
    try:
        state = fit(
            model,
            task,
            train_features,
            dataclasses.replace(cfg.train, resume=resume_from),
            runtime,
            evaluate=lambda m: evaluate_records(m, task, dev, runtime, eval_batch, "dev", dev_features),
            on_best=lambda m: save_model(m, tokenizer, out),
            checkpoint_dir=out / "checkpoint" if cfg.output.checkpoint else None,
            train_log=train_log,
            on_eval=on_eval,
        )
    except BaseException:
        train_log.close()  # an interrupted or pruned run still leaves a complete log
        raise
    load_weights(model, out / "model.safetensors")
    if task.needs_calibration:
        task.calibrate(predict_features(model, task, dev, dev_features, runtime, eval_batch, "dev"), dev)
        write_text(out / "run.yaml", repeatable(cfg).to_yaml())
    metrics["after"] = evaluate_records(
        model, task, eval_records, runtime, eval_batch, f"{eval_split} (after)"
    )
    baseline = task.baseline(train, eval_records)
    if baseline is not None:
        metrics["majority"] = baseline
    metrics["best_dev"] = {"step": state.best_step, task.main_metric: state.best_metric}
    train_log.write(
        "train_end",
        steps=state.step,
        train_seconds=state.train_seconds,
        train_examples=state.examples,
        train_examples_per_s=state.examples / max(state.train_seconds, 1e-9),
        train_windows=len(train_features),
        train_records=len(train),
        truncated_tokens=truncated,
        stopped_early=state.stopped_early,
        wall_seconds=time.perf_counter() - started,
    )
    train_log.close()
    write_json(out / "metrics.json", metrics)
    if cfg.output.plot:
        plot_curves(out / "train_log.jsonl", out / "curves.png", task.main_metric)
        if "confusion" in metrics["after"]:
            plot_confusion(metrics["after"]["confusion"], task.labels, out / "confusion.png")
    columns = {k: metrics[k] for k in ("before", "after", "majority") if k in metrics}
    print(format_table(columns, f"{eval_split} split: untrained head vs fine-tuned ({out})"))
    return metrics


def require_out_dir(cfg: RunConfig) -> Path:
    if not cfg.output.dir:
        raise BertkitError("no output directory: pass --out DIR")
    if not cfg.model.name_or_path:
        raise BertkitError("no model: pass --model (a local directory or a hub id)")
    out = Path(cfg.output.dir)
    if cfg.train.resume is None and (out / "checkpoint").exists():
        log.warning("%s holds an earlier run; starting over (pass --resume %s to continue it)", out, out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def checkpoint_to_resume(cfg: RunConfig) -> str | None:
    """``--resume DIR`` names the interrupted run's output directory; its state is in DIR/checkpoint."""
    if cfg.train.resume is None:
        return None
    ckpt = Path(cfg.train.resume) / "checkpoint"
    if not (ckpt / "training_state.pt").is_file():
        raise BertkitError(
            f"{cfg.train.resume}: no training state to resume from (no {ckpt}/training_state.pt)"
        )
    return str(ckpt)


def data_paths(cfg: RunConfig) -> dict[str, str]:
    """The train/dev/test files: given paths win over a registered data set's files."""
    paths: dict[str, str] = {}
    if cfg.data.dataset:
        paths = {k: str(v) for k, v in datasets.resolve(cfg.data.dataset, cfg.data.data_dir).items()}
    for split in ("train", "dev", "test"):
        if getattr(cfg.data, split):
            paths[split] = getattr(cfg.data, split)
    if "train" not in paths:
        raise BertkitError("no training data: pass --train FILE or --dataset NAME")
    for split, path in paths.items():
        if not Path(path).is_file():
            raise BertkitError(f"{path}: no such {split} file")
    return paths


def split_dev(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded random hold-out of ``fraction`` of train as dev (used when no dev file is given)."""
    if not 0 < fraction < 1:
        raise BertkitError(f"dev_fraction must be between 0 and 1, got {fraction}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(records) * fraction))
    if n_dev >= len(records):
        raise BertkitError(f"too few training records ({len(records)}) to hold out a dev split")
    dev_idx = set(order[:n_dev])
    log.warning(
        "no dev file: holding out %d of %d training records as dev (seed %d)", n_dev, len(records), seed
    )
    return [r for i, r in enumerate(records) if i not in dev_idx], [
        r for i, r in enumerate(records) if i in dev_idx
    ]


def repeatable(cfg: RunConfig) -> RunConfig:
    """The config as run.yaml keeps it: absolute local paths, and no one-off --resume."""

    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    data = dataclasses.replace(
        cfg.data,
        train=absolute(cfg.data.train),
        dev=absolute(cfg.data.dev),
        test=absolute(cfg.data.test),
        data_dir=absolute(cfg.data.data_dir),
    )
    model = dataclasses.replace(cfg.model, name_or_path=absolute(cfg.model.name_or_path))
    output = dataclasses.replace(cfg.output, dir=absolute(cfg.output.dir))
    train = dataclasses.replace(cfg.train, resume=None)
    return dataclasses.replace(cfg, data=data, model=model, train=train, output=output)


def previous_metrics(out: Path) -> dict:
    path = out / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
