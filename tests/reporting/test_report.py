"""`bertkit report`: a run's metrics and plots on one page, as Markdown or self-contained HTML."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from bertkit.cli.app import main
from bertkit.errors import BertkitError
from bertkit.reporting.plots import metric_limits, plot_confusion, plot_curves
from bertkit.reporting.report import render_report


@pytest.fixture
def run_dir(tmp_path):
    metrics = {
        "split": "test",
        "before": {"accuracy": 0.5, "macro_f1": 0.3333, "per_class": {}},
        "after": {
            "accuracy": 0.9,
            "macro_f1": 0.8889,
            "per_class": {
                "neg": {"precision": 1.0, "recall": 0.8, "f1": 0.8889, "support": 5},
                "pos": {"precision": 0.8333, "recall": 1.0, "f1": 0.9091, "support": 5},
            },
        },
        "majority": {"accuracy": 0.5, "macro_f1": 0.3333},
        "best_dev": {"step": 40, "accuracy": 0.95},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump({"task": "classify", "model": {"name_or_path": "tiny"}})
    )
    plot_confusion([[4, 1], [0, 5]], ["neg", "pos"], tmp_path / "confusion.png")
    return tmp_path


def test_markdown_has_every_column_and_links_the_plots(run_dir):
    page = render_report(run_dir, "md")
    assert "| metric | majority | before | after |" in page
    assert "| accuracy | 0.5000 | 0.5000 | 0.9000 |" in page
    assert "| pos | 0.8333 | 1.0000 | 0.9091 | 5 |" in page
    assert "![Confusion matrix (after fine-tuning)](confusion.png)" in page
    assert "curves.png" not in page  # only plots that exist are shown


def test_html_embeds_the_plots(run_dir):
    page = render_report(run_dir, "html")
    png = base64.b64encode((run_dir / "confusion.png").read_bytes()).decode("ascii")
    assert f"data:image/png;base64,{png}" in page
    assert "<td>accuracy</td><td>0.5000</td><td>0.5000</td><td>0.9000</td>" in page


def test_cli_writes_the_report_next_to_the_run(run_dir, capsys):
    assert main(["report", str(run_dir), "--format", "html"]) == 0
    assert (run_dir / "report.html").read_text().startswith("<!doctype html>")
    assert str(run_dir / "report.html") in capsys.readouterr().out


def test_a_directory_without_metrics_is_refused(tmp_path):
    with pytest.raises(BertkitError, match="no metrics.json"):
        render_report(tmp_path)


@pytest.mark.parametrize(
    ("values", "greater_is_better", "limits"),
    [
        ([0.2, 0.85], True, (0.0, 1.0)),  # F1, accuracy: every run on the same 0-1 axis
        ([3.2, 2.7], False, None),  # a loss or perplexity is not clamped to 0-1
        ([0.4, 0.3], False, None),  # nor a small MSE, whose direction is down
        ([-0.2, 0.4], True, None),  # a correlation below 0
        ([], True, None),
    ],
)
def test_curves_clamp_the_metric_axis_only_for_scores_between_0_and_1(values, greater_is_better, limits):
    assert metric_limits(values, greater_is_better) == limits


def test_curves_of_a_lower_is_better_metric_are_drawn(tmp_path):
    log = tmp_path / "train_log.jsonl"
    events = [{"event": "step", "step": s, "loss": 5.0 / s} for s in (1, 2, 3)]
    events += [{"event": "eval", "step": 3, "perplexity": 12.5}]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    plot_curves(log, tmp_path / "curves.png", "perplexity", greater_is_better=False)
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
