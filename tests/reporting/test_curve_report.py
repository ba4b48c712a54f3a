"""The learning-curve summary, table and plot from plain data, checked against hand-computed values."""

from __future__ import annotations

import pytest

from bertkit.reporting.curve_report import curve_table, plot_learning_curve, summarize


def test_summary_of_three_seeds_matches_hand_computed_values():
    row = summarize(100, {1: 0.5, 2: 0.7, 3: 0.9})
    assert row["n"] == 100 and row["per_seed"] == {"1": 0.5, "2": 0.7, "3": 0.9}
    assert row["mean"] == pytest.approx(0.7)
    # sample std: sqrt(((0.5 - 0.7)^2 + 0 + (0.9 - 0.7)^2) / (3 - 1)) = sqrt(0.04) = 0.2
    assert row["std"] == pytest.approx(0.2)
    assert (row["min"], row["max"]) == (0.5, 0.9)


def test_one_seed_has_no_spread_and_no_seed_no_numbers():
    assert summarize(10, {4: 0.25})["std"] == 0.0
    assert summarize(10, {})["mean"] is None


def test_table_has_a_line_per_size_with_every_seed():
    rows = [summarize(100, {1: 0.5, 2: 0.7, 3: 0.9}), summarize(300, {1: 0.8, 2: 0.6})]
    table = curve_table(rows, "f1", "test").splitlines()
    assert table[0].startswith("test f1 by training records")
    assert table[2] == "| records | seed 1 | seed 2 | seed 3 | mean | std | min | max |"
    assert table[4] == "| 100 | 0.5000 | 0.7000 | 0.9000 | 0.7000 | 0.2000 | 0.5000 | 0.9000 |"
    # 300: mean 0.7, std sqrt((0.01 + 0.01) / 1) = 0.1414; seed 3 has not finished
    assert table[5] == "| 300 | 0.8000 | 0.6000 | - | 0.7000 | 0.1414 | 0.6000 | 0.8000 |"


def test_plot_is_a_png_even_with_an_unfinished_size(tmp_path):
    rows = [summarize(100, {1: 0.5, 2: 0.7}), summarize(1000, {1: 0.8, 2: 0.9}), summarize(5000, {})]
    out = tmp_path / "curve.png"
    plot_learning_curve(rows, out, "accuracy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
