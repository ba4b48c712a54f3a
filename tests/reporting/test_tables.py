"""The CLI's plain-text metric tables."""

from __future__ import annotations

from bertkit.reporting.tables import format_table


def test_metric_names_are_never_cut_and_columns_line_up():
    table = format_table(
        {"before": {"macro_precision": 0.25, "f1": 0.5}, "after": {"macro_precision": 0.75, "f1": 1.0}},
        "dev",
    )
    title, head, *rows = table.splitlines()
    assert title == "dev"
    assert rows[0].split() == ["macro_precision", "0.2500", "0.7500"]  # not "macro_precisio"
    assert rows[1].split() == ["f1", "0.5000", "1.0000"]
    assert len({len(line) for line in (head, *rows)}) == 1  # one width for every line
