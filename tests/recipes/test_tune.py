"""Hyper-parameter search: a two-trial study on a tiny classification task, its tables, best.yaml, pruning."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import bertkit_command, make_splits, sentence

from bertkit.cli.app import build_parser, main
from bertkit.errors import BertkitError
from bertkit.recipes.tune import COLUMNS, make_study, pruning_callback, tune_config


def make_city_splits(folder: Path) -> dict[str, Path]:
    """Does the sentence name a city? Small enough for a few seconds per trial on 2 cores."""

    def row(rng: random.Random) -> list[str]:
        has_city = rng.random() < 0.5
        return [sentence(rng, rng.randint(0, 1), int(has_city), length=5), "travel" if has_city else "home"]

    return make_splits(folder, row, ["sentence", "label"], sizes=(64, 32, 32))


@pytest.fixture(scope="module")
def search(tiny_bert, tmp_path_factory) -> dict[str, Path]:
    """``bertkit tune`` with a test path that does not exist yet: tuning must never open it."""
    folder = tmp_path_factory.mktemp("tune")
    data = make_city_splits(folder)
    held_out = folder / "held_out.tsv"
    out = folder / "search"
    flags = ["--text-column", "sentence", "--label-column", "label", "--max-length", "24", "--seed", "3"]
    flags += ["--trials", "2", "--tune.epochs-max", "2", "--tune.lr-min", "1e-3", "--tune.lr-max", "5e-3"]
    flags += ["--tune.batch-sizes", "8,16", "--tune.study-name", "tiny", "--train.log-every", "1"]
    code = main(bertkit_command("tune", "classify", tiny_bert, {**data, "test": held_out}, out, *flags))
    assert code == 0
    return {"out": out, "test": data["test"], "held_out": held_out}


def trial_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def best_row(out: Path) -> dict[str, str]:
    return max((r for r in trial_rows(out) if r["state"] == "COMPLETE"), key=lambda r: float(r["value"]))


def test_search_writes_the_trial_tables_and_best_yaml(search):
    out = search["out"]
    rows = trial_rows(out)
    assert [r["number"] for r in rows] == ["0", "1"] and list(rows[0]) == list(COLUMNS)
    assert all(r["state"] == "COMPLETE" for r in rows)  # the median pruner waits for 5 finished trials
    for r in rows:
        assert 1e-3 <= float(r["lr"]) <= 5e-3 and r["batch_size"] in ("8", "16") and r["epochs"] in ("1", "2")
        assert 0.0 <= float(r["warmup_ratio"]) <= 0.2 and float(r["seconds"]) > 0
    best = best_row(out)
    table = (out / "trials.md").read_text().splitlines()
    assert table[0].startswith("# tiny:") and table[4].startswith(f"| {best['number']} | COMPLETE |")
    cfg = yaml.safe_load((out / "best.yaml").read_text())
    assert cfg["task"] == "classify" and cfg["output"]["dir"] == str((out / "best").resolve())
    assert cfg["output"]["plot"] is True and cfg["output"]["checkpoint"] is True  # restored defaults
    assert cfg["train"]["lr"] == float(best["lr"]) and cfg["train"]["batch_size"] == int(best["batch_size"])
    assert cfg["train"]["epochs"] == float(best["epochs"])
    assert cfg["train"]["warmup_ratio"] == float(best["warmup_ratio"])


def test_only_the_best_trial_keeps_its_weights(search):
    out, best = search["out"], best_row(search["out"])["number"]
    for folder in sorted(out.glob("trial-*")):
        for name in ("run.yaml", "metrics.json", "train_log.jsonl"):
            assert (folder / name).is_file(), folder / name
        assert (folder / "model.safetensors").is_file() == (folder.name == f"trial-{int(best):03d}")
        assert not (folder / "checkpoint").exists() and not (folder / "curves.png").exists()


def test_tuning_never_reads_the_test_file(search):
    out = search["out"]
    for folder in out.glob("trial-*"):
        assert yaml.safe_load((folder / "run.yaml").read_text())["data"]["test"] is None
        assert json.loads((folder / "metrics.json").read_text())["split"] == "dev"
    assert yaml.safe_load((out / "best.yaml").read_text())["data"]["test"] == str(search["held_out"])


def training_history(run_dir: Path) -> list[dict]:
    """Every step's loss and learning rate and every dev evaluation, without the timings."""
    events = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in e.items() if k != "examples_per_s"}
        for e in events
        if e["event"] in ("step", "eval")
    ]


def test_best_yaml_repeats_the_best_trial(search):
    out = search["out"]
    shutil.copy(search["test"], search["held_out"])  # the repeat is the real run: now it scores test
    assert main(["-q", "finetune", "classify", "--config", str(out / "best.yaml")]) == 0
    best = best_row(out)
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert metrics["best_dev"]["accuracy"] == pytest.approx(float(best["value"]), abs=1e-9)
    # the tiny model barely beats chance in 2 epochs, so equal accuracies alone would prove little:
    # same seed, data order and initial head must give the same loss at every step, to the last bit
    trial = out / f"trial-{int(best['number']):03d}"
    history = training_history(out / "best")
    assert len(history) > 3 and history == training_history(trial)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_pruning_callback_reports_and_raises_when_the_pruner_says_so():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        pruning_callback(trial, "accuracy")(12, {"accuracy": 0.5, "loss": 0.7})
    assert study.trials[0].intermediate_values == {0: 0.5}
    never = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner()).ask()
    pruning_callback(never, "accuracy")(12, {"accuracy": 0.5})


def test_the_first_evaluation_of_a_trial_is_never_pruned():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = make_study(seed=0)
    for _ in range(5):  # enough finished trials for the median pruner to judge
        study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={0: 0.9, 1: 0.9}))
    on_eval = pruning_callback(study.ask(), "f1")
    on_eval(40, {"f1": 0.1})  # far below the median, but the first evaluation
    with pytest.raises(optuna.TrialPruned):
        on_eval(80, {"f1": 0.1})


def test_tune_flags_are_checked_and_listed(capsys):
    assert tune_config({"batch_sizes": "8, 16"}).batch_sizes == [8, 16]
    with pytest.raises(BertkitError, match="lr_min"):
        tune_config({"lr_min": "1e-3", "lr_max": "1e-4"})
    with pytest.raises(BertkitError, match="tune.epochs_max"):
        tune_config({"epochs_max": "2.5"})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "classify", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--trials",
        "--tune.lr-min",
        "--tune.lr-max",
        "--tune.batch-sizes",
        "--tune.epochs-max",
        "--tune.warmup-max",
        "--tune.timeout",
        "--tune.study-name",
        "--text-column",
    ):
        assert flag in text, flag


def test_pruned_trials_are_listed_and_leave_no_weights(tiny_bert, tmp_path, monkeypatch, capsys):
    import bertkit.recipes.tune

    always = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    monkeypatch.setattr(bertkit.recipes.tune, "make_study", lambda seed, name=None: always)
    data = make_city_splits(tmp_path)
    flags = ["--text-column", "sentence", "--max-length", "24", "--trials", "1", "--tune.epochs-max", "1"]
    args = bertkit_command("tune", "classify", tiny_bert, data, tmp_path / "search", *flags)
    assert main(args) == 0
    (row,) = trial_rows(tmp_path / "search")
    assert row["state"] == "PRUNED" and float(row["value"]) >= 0  # the last reported dev score
    assert not list((tmp_path / "search").rglob("*.safetensors"))
    assert not (tmp_path / "search" / "best.yaml").exists()
    assert "no trial finished" in capsys.readouterr().out
