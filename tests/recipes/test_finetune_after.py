"""The "after" figures on dev: the best step's own evaluation, not a repeat of it, and still the score
of the saved model; with a test file, the saved model scored on test."""

from __future__ import annotations

import json

import pytest
from conftest import ner_command

import bertkit.recipes.finetune as recipe
from bertkit.cli.app import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = ["--batch-size", "16", "--max-length", "16", "--stride", "4", "--lr", "5e-3", "--epochs", "3"]
FIXED = ["--train.adapt_threads", "false", "--train.seed", "3"]


def counted_passes(monkeypatch) -> list[str]:
    """The progress labels of every pass the recipe makes over a split."""
    labels: list[str] = []
    real = recipe.evaluate_records

    def counting(model, task, records, runtime, batch_size, desc=None, features=None):
        labels.append(desc)
        return real(model, task, records, runtime, batch_size, desc, features)

    monkeypatch.setattr(recipe, "evaluate_records", counting)
    return labels


def test_after_on_dev_is_the_best_evaluation_and_the_saved_models_score(
    tiny_bert, synthetic_ner, tmp_path, monkeypatch
):
    passes = counted_passes(monkeypatch)
    out = tmp_path / "run"
    assert main(ner_command(tiny_bert, synthetic_ner, out, *QUICK, *FIXED, test=False)) == 0
    assert passes == ["dev (before)", "dev", "dev", "dev"]  # one per epoch, none repeated for "after"
    metrics = json.loads((out / "metrics.json").read_text())
    evals = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    best = next(e for e in evals if e["event"] == "eval" and e["step"] == metrics["best_dev"]["step"])
    assert metrics["after"]["f1"] == best["f1"] and metrics["after"]["f1"] == metrics["best_dev"]["f1"]
    assert metrics["after"]["f1"] > metrics["before"]["f1"]
    # what `bertkit evaluate` makes of the saved model on dev is what metrics.json says
    assert main(["-q", "evaluate", "--model", str(out), "--data", str(synthetic_ner["dev"]),
                 "--out", str(tmp_path / "again.json")]) == 0  # fmt: skip
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["f1"] == pytest.approx(metrics["after"]["f1"], abs=1e-6)
    assert again["precision"] == pytest.approx(metrics["after"]["precision"], abs=1e-6)


def test_with_a_test_file_after_scores_test(tiny_bert, synthetic_ner, tmp_path, monkeypatch):
    passes = counted_passes(monkeypatch)
    out = tmp_path / "run"
    assert main(ner_command(tiny_bert, synthetic_ner, out, *QUICK, *FIXED)) == 0
    assert passes == ["test (before)", "dev", "dev", "dev", "test (after)"]
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"


def test_without_before_and_one_evaluation_at_the_end(tiny_bert, synthetic_ner, tmp_path, monkeypatch):
    """``--output.before false`` and an ``eval_every`` past the last step: the one pass over dev that a
    Trainer without an eval strategy makes, and the same "after" as the evaluation it reuses."""
    passes = counted_passes(monkeypatch)
    out = tmp_path / "run"
    lean = ["--output.before", "false", "--train.eval_every", "1000000"]
    assert main(ner_command(tiny_bert, synthetic_ner, out, *QUICK, *FIXED, *lean, test=False)) == 0
    assert passes == ["dev"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "before" not in metrics and "worse_than_untrained" not in metrics
    assert metrics["split"] == "dev" and metrics["after"]["f1"] == metrics["best_dev"]["f1"]
    train_log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = max(e["step"] for e in train_log if e["event"] == "step")
    assert metrics["best_dev"]["step"] == steps  # the last step's model is the one saved and scored
    assert main(["-q", "report", str(out)]) == 0
    assert "before" not in (out / "report.md").read_text()
