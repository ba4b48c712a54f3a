"""The fine-tuning recipe: read data, score the untrained head, train, keep the best, score again.

Writes to the output directory: the best model in the Hugging Face layout, ``run.yaml`` (the resolved
config, enough to repeat the run), ``metrics.json`` (before/after), ``train_log.jsonl``, ``curves.png``
and ``checkpoint/`` (the training state for ``--resume``). The directory must be new or empty, or hold
an earlier run and be given ``--overwrite`` (which empties it), or be continued with ``--resume DIR``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bertkit.atomic import write_json, write_text
from bertkit.config import RunConfig
from bertkit.data import registry as datasets
from bertkit.data.features import InMemoryFeatures
from bertkit.errors import BertkitError, require_records
from bertkit.inference.evaluation import evaluate_records, predict_all
from bertkit.modeling.load import check_model, load_tokenizer
from bertkit.modeling.lora import ADAPTER_DIR, add_lora, is_lora, merged, save_adapter
from bertkit.recipes.run_dir import (
    CHECKPOINT,
    ScoresByStep,
    checkpoint_to_resume,
    elastic_restart,
    prepare_out_dir,
    previous_metrics,
)
from bertkit.reporting.plots import plot_confusion, plot_curves
from bertkit.reporting.tables import format_table
from bertkit.tasks import make_task
from bertkit.training import distributed
from bertkit.training.checkpoint import load_weights, save_model
from bertkit.training.frozen_cache import with_cache
from bertkit.training.loop import TrainLog, fit
from bertkit.training.runtime import make_runtime, seed_everything
from bertkit.training.state import run_fingerprint, with_resolved

log = logging.getLogger(__name__)


def finetune(
    cfg: RunConfig,
    on_eval: Callable[[int, dict], None] | None = None,
    records: dict[str, list] | None = None,
) -> dict[str, Any]:
    """Run the whole recipe for ``cfg``; return the metrics written to ``metrics.json``.

    ``on_eval(step, dev_metrics)`` is called after each dev evaluation (and may raise to stop the run).
    ``records`` (``{"train": [...], "dev": [...]}``, either or both) are used instead of reading those
    splits' files: ``bertkit curve`` trains on nested subsets of train against one fixed dev.
    """
    started = time.perf_counter()
    # everything that can refuse the run comes before anything touches the output directory
    cfg.validate()
    check_model(cfg.model)  # a bad --model or --max-length stops the run before the output directory exists
    paths = data_paths(cfg)
    fingerprint = run_fingerprint(cfg, {k: v for k, v in paths.items() if k in ("train", "dev")})
    tokenizer = load_tokenizer(cfg.model)
    task = make_task(cfg, tokenizer)  # a task refuses options that do not fit together (qa's --doc-stride)
    # joins the process group under torchrun; starts the thread governor (bertkit.training.threads)
    runtime = make_runtime(cfg.train.precision, cfg.train.threads, cfg.train.adapt_threads)
    main = runtime.is_main  # only rank 0 writes
    cfg = distributed.on_main(lambda: elastic_restart(cfg))
    out = distributed.on_main(lambda: prepare_out_dir(cfg))
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=str(out)))
    resume_from = checkpoint_to_resume(cfg, out, fingerprint)
    vocabulary = len(tokenizer)
    task.prepare_tokenizer(tokenizer)  # before the model is built: it sizes the embeddings
    added_tokens = range(vocabulary, len(tokenizer))
    given = records or {}
    train = given["train"] if "train" in given else require_records(task.read(paths["train"]), paths["train"])
    dev = given.get("dev")
    if dev is None and not paths.get("dev"):
        train, dev = split_dev(train, cfg.data.dev_fraction, cfg.train.seed)
    train = task.prepare_train(train, cfg.train.seed)  # after the split: no copy of a dev text in train
    task.setup(train)
    # dev and test are read against train's label set, so a label train never saw is caught at its line
    dev = require_records(task.read(paths["dev"]), paths["dev"]) if dev is None else dev
    test = require_records(task.read(paths["test"]), paths["test"]) if paths.get("test") else None
    fingerprint = with_resolved(fingerprint, cfg)  # what run.yaml says, as well as what was given
    if main:
        write_text(out / "run.yaml", repeatable(cfg).to_yaml())
    train_features = encoded(task, train, "train")
    truncated = task.uncovered(train, train_features)
    dev_features = encoded(task, dev, "dev")
    eval_split = "test" if test is not None else "dev"
    eval_records = test if test is not None else dev
    eval_features = encoded(task, test, "test") if test is not None else dev_features
    eval_batch = cfg.train.batch_size * 2

    seed_everything(cfg.train.seed)
    model = task.build_model()
    if cfg.model.peft == "lora":
        model = add_lora(model, cfg.lora, task.trained_whole(model), added_tokens)
    metrics = (previous_metrics(out) if resume_from else {}) or {"split": eval_split}
    if cfg.output.before and "before" not in metrics:
        metrics = {
            "split": eval_split,
            "before": evaluate_records(
                model, task, eval_records, runtime, eval_batch, f"{eval_split} (before)", eval_features
            ),
        }
        if main:
            write_json(out / "metrics.json", metrics)

    saved_tokenizer = task.saved_tokenizer(tokenizer)
    dev_task, dev_records, dev_selected = task.selection(dev, dev_features)
    train_task, dev_task = with_cache(
        model, (task, dev_task), (train_features, dev_selected), cfg.model, runtime, eval_batch, out
    )
    train_log = TrainLog(out / "train_log.jsonl" if main else None)
    dev_scores = ScoresByStep(
        lambda m: evaluate_records(m, dev_task, dev_records, runtime, eval_batch, "dev", dev_selected),
        on_eval,
    )
    # "after" on dev would score the best step's model on what its own evaluation scored: reuse that
    # (one pass over dev fewer) unless something between them differs -- test data, a dev subset or
    # cached frozen layers during training, a tuned decision threshold, LoRA's merge
    after_is_best_eval = (
        test is None
        and dev_task is task
        and dev_selected is dev_features
        and not task.needs_calibration
        and not is_lora(model)
    )
    try:
        state = fit(
            model,
            train_task,
            InMemoryFeatures(train_features),
            dataclasses.replace(cfg.train, resume=resume_from),
            runtime,
            evaluate=dev_scores,
            on_best=lambda m: save_finetuned(m, task, saved_tokenizer, out),
            checkpoint_dir=out / CHECKPOINT if cfg.output.checkpoint else None,
            train_log=train_log,
            on_eval=dev_scores.noted,
            fingerprint=fingerprint,
        )
    except BaseException:
        train_log.close()  # an interrupted or pruned run still leaves a complete log
        raise
    if state.best_metric is None and main:  # no evaluation ran, so nothing saved the model: the final one
        save_finetuned(model, task, saved_tokenizer, out)
    distributed.barrier()
    if is_lora(model):  # the best step's merged weights are the model from now on
        model = task.model_class.from_pretrained(str(out)).to(runtime.device)
    else:
        load_weights(model, out / "model.safetensors")
    if task.needs_calibration:
        task.calibrate(predict_all(model, task, dev, dev_features, runtime, eval_batch, "dev"), dev)
        if main:
            write_text(out / "run.yaml", repeatable(cfg).to_yaml())
    best_eval = dev_scores.by_step.get(state.best_step) if after_is_best_eval else None
    if best_eval is not None:
        log.info("after: the best step's (%d) own dev evaluation, not repeated", state.best_step)
    metrics["after"] = best_eval or evaluate_records(
        model, task, eval_records, runtime, eval_batch, f"{eval_split} (after)", eval_features
    )
    baseline = task.baseline(train, eval_records)
    if baseline is not None:
        metrics["majority"] = baseline
    metrics["best_dev"] = {"step": state.best_step, task.main_metric: state.best_metric}
    warn_if_worse_than_untrained(metrics, task, eval_split, train_log)
    train_log.write(
        "train_end",
        **state.throughput(),
        train_windows=len(train_features),
        train_tokens=sum(len(f.input_ids) for f in train_features),  # one pass, unpadded: for MFU
        train_records=len(train),
        truncated_tokens=truncated,
        stopped_early=state.stopped_early,
        wall_seconds=time.perf_counter() - started,
    )
    train_log.close()
    if not main:
        return metrics
    write_json(out / "metrics.json", metrics)
    if cfg.output.plot:
        plot_curves(out / "train_log.jsonl", out / "curves.png", task.main_metric, task.greater_is_better)
        if "confusion" in metrics["after"]:
            plot_confusion(metrics["after"]["confusion"], task.labels, out / "confusion.png")
    columns = {k: metrics[k] for k in ("before", "after", "majority") if k in metrics}
    title = "untrained head vs fine-tuned" if "before" in columns else "fine-tuned"
    print(format_table(columns, f"{eval_split} split: {title} ({out})"))
    return metrics


def save_finetuned(model: Any, task: Any, tokenizer: Any, out: Path) -> None:
    """The model in the Hugging Face layout; a LoRA model also as its adapter, in ``OUT/adapter``, and
    as the adapters merged into the weights, the plain model in ``OUT``."""
    if is_lora(model):
        save_adapter(model, out / ADAPTER_DIR)
        model = merged(model)
    save_model(model, tokenizer, out, task.saved_weights(model))


def encoded(task: Any, records: list, split: str) -> list:
    """The features of one split, described once in the log."""
    features = task.encode(records)
    task.describe_encoding(records, features, split)
    return features


def warn_if_worse_than_untrained(metrics: dict, task: Any, split: str, train_log: TrainLog) -> None:
    """A fine-tuned model that scores below its own untrained head has learned nothing useful (too high
    a learning rate, too few steps, wrong labels): say so in the log and in metrics.json."""
    name = task.main_metric
    before, after = metrics.get("before", {}).get(name), metrics["after"].get(name)
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return
    worse = after < before if task.greater_is_better else after > before
    metrics["worse_than_untrained"] = bool(worse)
    if worse:
        log.warning(
            "the fine-tuned model scores %s %.4f on %s, below the untrained head's %.4f: check the "
            "learning rate, the number of steps and the labels",
            name,
            after,
            split,
            before,
        )
        train_log.write("warning", kind="worse_than_untrained", metric=name, before=before, after=after)


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
