"""Hyper-parameter search: an Optuna study of learning rate, batch size, epochs and warm-up on dev.

Each trial is one ``finetune()`` run in ``OUT/trial-NNN`` that never reads the test file; weak trials
are pruned at their dev evaluations. ``OUT/best.yaml`` repeats the best trial with ``bertkit finetune``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import math
import shutil
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertkit.atomic import write_text
from bertkit.config import RunConfig, coerce, option
from bertkit.errors import BertkitError
from bertkit.modeling.load import load_tokenizer, require_model_name
from bertkit.recipes.finetune import data_paths, finetune, repeatable
from bertkit.recipes.run_dir import require_out_dir
from bertkit.tasks import make_task

if TYPE_CHECKING:  # optuna is imported when a search runs: it is not a dependency of the rest of bertkit
    import optuna

COLUMNS = ("number", "state", "value", "lr", "batch_size", "epochs", "warmup_ratio", "seconds")
WEIGHT_FILES = ("*.safetensors", "*.bin")


@dataclass
class TuneConfig:
    """The search space and budget of ``bertkit tune`` (the ``--tune.*`` flags)."""

    lr_min: float = option(1e-5, "smallest peak learning rate tried (log-uniform)")
    lr_max: float = option(3e-4, "largest peak learning rate tried (log-uniform)")
    # Optional only because config.coerce finds a list's item type through ``X | None``
    batch_sizes: list[int] | None = option([8, 16, 32], "batch sizes tried, comma-separated")
    epochs_max: int = option(5, "most epochs tried (from 1)")
    warmup_max: float = option(0.2, "largest warm-up ratio tried (from 0)")
    timeout: float | None = option(None, "start no new trial after this many seconds")
    study_name: str | None = option(None, "name of the Optuna study")


def tune_config(values: dict[str, Any]) -> TuneConfig:
    """A TuneConfig from ``{field: value}`` (the ``--tune.*`` flags), with types and ranges checked."""
    fields = {f.name: f for f in dataclasses.fields(TuneConfig)}
    hints = typing.get_type_hints(TuneConfig)
    cfg = TuneConfig(**{k: coerce(v, hints[k], f"tune.{k}", fields[k]) for k, v in values.items()})
    if not 0 < cfg.lr_min <= cfg.lr_max:
        raise BertkitError(f"tune: need 0 < lr_min <= lr_max, got {cfg.lr_min} and {cfg.lr_max}")
    if not cfg.batch_sizes or min(cfg.batch_sizes) < 1:
        raise BertkitError(f"tune.batch_sizes: expected positive sizes, got {cfg.batch_sizes}")
    if cfg.epochs_max < 1:
        raise BertkitError(f"tune.epochs_max: expected at least 1, got {cfg.epochs_max}")
    if not 0 <= cfg.warmup_max < 1:
        raise BertkitError(f"tune.warmup_max: expected a share in [0, 1), got {cfg.warmup_max}")
    return cfg


def tune(cfg: RunConfig, space: TuneConfig, trials: int) -> optuna.Study:
    """Run up to ``trials`` trials; write ``trials.csv``, ``trials.md`` and ``best.yaml`` to the out dir."""
    optuna = import_optuna()
    if trials < 1:
        raise BertkitError(f"--trials: expected at least 1, got {trials}")
    if cfg.train.resume:
        raise BertkitError("tune starts every trial afresh; --resume is for one fine-tuning run")
    require_model_name(cfg.model)  # before the output directory is made
    out = require_out_dir(cfg)
    if any(out.glob("trial-*")):  # trial numbers restart at 0: a new study would mix with the old files
        raise BertkitError(f"{out} holds an earlier search; pass another --out")
    metric = make_task(cfg, load_tokenizer(cfg.model)).main_metric
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = make_study(cfg.train.seed, space.study_name)
    objective = make_objective(trial_base(cfg), space, out, metric)
    try:
        study.optimize(
            objective, n_trials=trials, timeout=space.timeout, callbacks=[after_trial(out, metric)]
        )
    finally:  # an interrupted search still leaves the table of the trials it finished
        drop_weights(out, best_trial(study))
        write_reports(study, cfg, out, metric)
    return study


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise BertkitError("bertkit tune needs optuna: pip install optuna") from err
    return optuna


def make_study(seed: int, name: str | None = None) -> optuna.Study:
    import optuna

    return optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        # trials report by evaluation number (0, 1, ...), so the first evaluation is never pruned
        pruner=optuna.pruners.MedianPruner(n_warmup_steps=1),
    )


def trial_base(cfg: RunConfig) -> RunConfig:
    """The config every trial starts from: train and dev files only, no plots, no resume state."""
    # a registered data set brings its own test split: name its train/dev files instead of the set
    paths = data_paths(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test=None)))
    data = dataclasses.replace(cfg.data, dataset=None, train=paths["train"], dev=paths.get("dev"), test=None)
    output = dataclasses.replace(cfg.output, plot=False, checkpoint=False)
    return dataclasses.replace(cfg, data=data, output=output)


def make_objective(
    base: RunConfig, space: TuneConfig, out: Path, metric: str
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        params = {
            "lr": trial.suggest_float("lr", space.lr_min, space.lr_max, log=True),
            "batch_size": trial.suggest_categorical("batch_size", space.batch_sizes),
            "epochs": trial.suggest_int("epochs", 1, space.epochs_max),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, space.warmup_max),
        }
        run = with_params(base, params)
        run.output = dataclasses.replace(run.output, dir=str(trial_dir(out, trial.number)))
        # finetune prints a before/after table per run; metrics.json keeps it, the search prints one line
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = finetune(run, on_eval=pruning_callback(trial, metric))
        return metrics["best_dev"][metric]

    return objective


def with_params(cfg: RunConfig, params: dict[str, Any]) -> RunConfig:
    train = dataclasses.replace(
        cfg.train,
        lr=params["lr"],
        batch_size=params["batch_size"],
        epochs=float(params["epochs"]),
        warmup_ratio=params["warmup_ratio"],
    )
    return dataclasses.replace(cfg, train=train)


def pruning_callback(trial: optuna.Trial, metric: str) -> Callable[[int, dict], None]:
    """``on_eval`` for finetune: report the dev score to the trial; stop the run when the pruner says so."""
    import optuna

    # the evaluation number, not the optimizer step, is comparable across batch sizes (per epoch by default)
    evaluations = itertools.count()

    def on_eval(step: int, dev: dict) -> None:
        trial.report(dev[metric], next(evaluations))
        if trial.should_prune():
            raise optuna.TrialPruned(f"dev {metric} {dev[metric]:.4f} at step {step} is below the median")

    return on_eval


def after_trial(out: Path, metric: str) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_trial(study)
        drop_weights(out, best)
        row = trial_row(trial)
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        print(
            f"trial {trial.number:03d} {row['state']:<8} dev {metric} {value}  lr {row['lr']:.2e}  "
            f"batch {row['batch_size']}  epochs {row['epochs']}  warm-up {row['warmup_ratio']:.3f}  "
            f"{row['seconds']:.1f}s" + ("  (best so far)" if best == trial.number else ""),
            flush=True,
        )

    return report


def best_trial(study: optuna.Study) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:  # no trial has completed
        return None


def trial_dir(out: Path, number: int) -> Path:
    return out / f"trial-{number:03d}"


def drop_weights(out: Path, keep: int | None) -> None:
    """Delete the model weights of every trial but ``keep``; logs, configs and metrics stay."""
    for folder in out.glob("trial-*"):
        if keep is not None and folder == trial_dir(out, keep):
            continue
        for pattern in WEIGHT_FILES:
            for path in folder.glob(pattern):
                path.unlink()
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    seconds = trial.duration.total_seconds() if trial.duration else None
    row = {"number": trial.number, "state": trial.state.name, "value": trial.value, "seconds": seconds}
    return {**row, **{k: trial.params.get(k) for k in ("lr", "batch_size", "epochs", "warmup_ratio")}}


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished trials best first, then pruned ones by their last score, then failed ones."""

    def key(row: dict[str, Any]) -> tuple:
        value = row["value"] if row["value"] is not None and not math.isnan(row["value"]) else -math.inf
        return ({"COMPLETE": 0, "PRUNED": 1}.get(row["state"], 2), -value, row["number"])

    return sorted(rows, key=key)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def markdown_table(rows: list[dict[str, Any]]) -> str:
    formats = {"value": ".4f", "lr": ".2e", "warmup_ratio": ".3f", "seconds": ".1f"}

    def cell(row: dict[str, Any], column: str) -> str:
        value = row[column]
        return "-" if value is None else format(value, formats.get(column, ""))

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row, c) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_reports(study: optuna.Study, cfg: RunConfig, out: Path, metric: str) -> None:
    """``trials.csv``, ``trials.md`` (best first) and, once a trial has finished, ``best.yaml``."""
    rows = [trial_row(t) for t in study.trials]
    table = markdown_table(ranked(rows))
    write_text(out / "trials.csv", csv_text(rows))
    write_text(out / "trials.md", f"# {study.study_name}: dev {metric} of each trial\n\n{table}")
    print(f"\nstudy {study.study_name} (value: dev {metric})\n{table}")
    if best_trial(study) is None:
        print("no trial finished: no best.yaml written")
        return
    best = study.best_trial
    # the test file and the output options come back: best.yaml is the run the user would have made
    best_cfg = with_params(cfg, best.params)
    best_cfg.output = dataclasses.replace(cfg.output, dir=str(out.resolve() / "best"))
    write_text(out / "best.yaml", repeatable(best_cfg).to_yaml())
    print(f"best dev {metric}: {best.value:.4f} (trial {best.number:03d})")
    print(f"repeat it: bertkit finetune {cfg.task_name} --config {out / 'best.yaml'}")
