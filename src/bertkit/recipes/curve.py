"""Learning curve (``bertkit curve``): fine-tune on nested random subsets of train, several seeds each,
and score every run on dev (or on test when given), so a user sees whether more labels would pay.

Seed ``s`` shuffles train once (``random.Random(s)``) and size ``k`` trains on the first ``k`` records of
that order, so one seed's subsets are nested; ``s`` is the training seed too. Dev never changes: the dev
file, or one hold-out of train made with the base ``--seed`` before any subset is drawn. Each run is the
fine-tuning recipe in ``OUT/size-K/seed-S``; one whose ``metrics.json`` holds its final scores is skipped
on a rerun. Model weights are deleted after each run unless ``keep_models``: a curve of 4 sizes x 3 seeds
would otherwise keep 12 models to measure one number each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

from bertkit.atomic import write_json, write_text
from bertkit.config import RunConfig
from bertkit.errors import BertkitError
from bertkit.modeling.load import load_tokenizer, require_model_name
from bertkit.recipes.finetune import data_paths, finetune, split_dev
from bertkit.recipes.run_dir import CHECKPOINT, require_out_dir
from bertkit.recipes.tune import WEIGHT_FILES
from bertkit.reporting.curve_report import curve_table, plot_learning_curve, summarize
from bertkit.tasks import make_task

log = logging.getLogger(__name__)

ALL = "all"


def parse_sizes(text: str) -> list[int | str]:
    """``"100,300,all"`` -> ``[100, 300, "all"]``: positive counts or ``all``, duplicates removed."""
    sizes: list[int | str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.lower() == ALL:
            size: int | str = ALL
        elif part.isdigit() and int(part) > 0:
            size = int(part)
        else:
            raise BertkitError(f"--sizes: expected positive record counts or 'all', got {part!r} in {text!r}")
        if size not in sizes:
            sizes.append(size)
    return sizes


def resolve_sizes(sizes: list[int | str], n_train: int) -> list[int]:
    """Record counts in increasing order (``all`` is ``n_train``); a count above ``n_train`` is refused:
    training on fewer records than asked while calling it that size would mislabel the curve."""
    too_big = [s for s in sizes if s != ALL and int(s) > n_train]
    if too_big:
        raise BertkitError(
            f"--sizes {too_big[0]}: train has only {n_train} records (after any dev hold-out); "
            "use 'all' for the whole set"
        )
    return sorted({n_train if s == ALL else int(s) for s in sizes})


def subset_order(n_train: int, seed: int) -> list[int]:
    """The order in which seed ``seed`` takes the records: size ``k`` trains on the first ``k``."""
    order = list(range(n_train))
    random.Random(seed).shuffle(order)
    return order


def nested_subsets(n_train: int, sizes: list[int], seed: int) -> dict[int, list[int]]:
    """Record indices of each size for one seed; each subset contains every smaller one."""
    order = subset_order(n_train, seed)
    return {k: sorted(order[:k]) for k in sizes}


def run_dir(out: Path, size: int, seed: int) -> Path:
    return out / f"size-{size}" / f"seed-{seed}"


def finished_metrics(folder: Path) -> dict | None:
    """The metrics of a run that completed (``metrics.json`` with its ``after`` scores), else None:
    the recipe writes the untrained scores to metrics.json before training starts."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return metrics if "after" in metrics else None


def drop_weights(folder: Path) -> None:
    """Delete a run's model weights and training state; logs, run.yaml and metrics stay."""
    for pattern in WEIGHT_FILES:
        for path in folder.rglob(pattern):
            path.unlink()
    shutil.rmtree(folder / CHECKPOINT, ignore_errors=True)


def run_base(cfg: RunConfig) -> RunConfig:
    """What every run shares: no per-run plots or checkpoints; an unfinished run's folder is emptied."""
    output = dataclasses.replace(cfg.output, plot=False, checkpoint=False, overwrite=True)
    return dataclasses.replace(cfg, output=output)


def read_splits(cfg: RunConfig) -> tuple[Any, list, list | None]:
    """The task, train as read, and the held-out dev (None when a dev file is given). Reading fixes what
    the task detects (NER's tag scheme) in ``cfg.task``, which every run shares."""
    task = make_task(cfg, load_tokenizer(cfg.model))
    paths = data_paths(cfg)
    train = task.read(paths["train"])
    if paths.get("dev"):
        return task, train, None
    train, dev = split_dev(train, cfg.data.dev_fraction, cfg.train.seed)
    return task, train, dev


def curve(cfg: RunConfig, sizes: list[int | str], seeds: int, keep_models: bool = False) -> dict[str, Any]:
    """Run every size x seed not already finished; write ``curve.json``, ``curve.md``, ``curve.png``."""
    if seeds < 1:
        raise BertkitError(f"--seeds: expected at least 1, got {seeds}")
    if cfg.train.resume:
        raise BertkitError("curve skips finished runs by itself; --resume is for one fine-tuning run")
    cfg.validate()
    require_model_name(cfg.model)
    task, train, dev = read_splits(cfg)
    counts = resolve_sizes(sizes, len(train))
    out = require_out_dir(cfg)
    seed_list = [cfg.train.seed + i for i in range(seeds)]
    write_subsets(out, len(train), counts, seed_list, dev is not None)
    base = run_base(cfg)
    results: dict[int, dict[int, float]] = {k: {} for k in counts}
    split = "dev"
    for k in counts:
        for seed in seed_list:
            folder = run_dir(out, k, seed)
            metrics = finished_metrics(folder)
            if metrics is None:
                metrics = one_run(
                    base, folder, [train[i] for i in subset_order(len(train), seed)[:k]], dev, seed
                )
                if not keep_models:
                    drop_weights(folder)
            else:
                print(f"size {k} seed {seed}: finished before, skipped", flush=True)
            split = metrics.get("split", split)
            results[k][seed] = metrics["after"][task.main_metric]
            print(f"size {k} seed {seed}: {split} {task.main_metric} {results[k][seed]:.4f}", flush=True)
            summary = write_reports(out, results, task.main_metric, split)
    print(f"\n{curve_table(summary['sizes'], task.main_metric, split)}")
    return summary


def one_run(base: RunConfig, folder: Path, train: list, dev: list | None, seed: int) -> dict:
    """One fine-tuning run of the curve; its before/after table stays in its metrics.json."""
    run = dataclasses.replace(
        base,
        train=dataclasses.replace(base.train, seed=seed),
        output=dataclasses.replace(base.output, dir=str(folder)),
    )
    given = {"train": train, **({"dev": dev} if dev is not None else {})}
    with contextlib.redirect_stdout(io.StringIO()):
        return finetune(run, records=given)


def write_subsets(out: Path, n_train: int, counts: list[int], seeds: list[int], held_out: bool) -> None:
    """``OUT/subsets.json``: which records (0-based, in train as read, after any dev hold-out) each
    size of each seed trained on, so a run can be repeated by hand."""
    data = {
        "train_records": n_train,
        "dev": "held out of train with the base seed" if held_out else "the dev file",
        "subsets": {
            str(seed): {
                str(k): ("all" if k == n_train else sorted(subset_order(n_train, seed)[:k])) for k in counts
            }
            for seed in seeds
        },
    }
    write_json(out / "subsets.json", data)


def write_reports(out: Path, results: dict[int, dict[int, float]], metric: str, split: str) -> dict[str, Any]:
    """curve.json, curve.md and curve.png of the runs finished so far (an interrupted curve keeps them)."""
    rows = [summarize(k, per_seed) for k, per_seed in results.items()]
    summary = {"metric": metric, "split": split, "sizes": rows}
    write_json(out / "curve.json", summary)
    write_text(out / "curve.md", curve_table(rows, metric, split))
    plot_learning_curve(rows, out / "curve.png", metric, split)
    return summary
