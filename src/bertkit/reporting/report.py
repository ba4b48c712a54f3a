"""One page per run: the metrics of ``metrics.json`` and the run's plots, as Markdown or HTML.

HTML embeds the plots (one self-contained file to mail around); Markdown links them by relative path.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from bertkit.atomic import write_text
from bertkit.errors import BertkitError

PLOTS = {"curves.png": "Learning curves", "confusion.png": "Confusion matrix (after fine-tuning)"}
COLUMNS = ("majority", "before", "after")


def render_report(run_dir: str | Path, fmt: str = "md") -> str:
    """The report of the run in ``run_dir`` as Markdown (``md``) or HTML (``html``) text."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise BertkitError(f"{run_dir}: no metrics.json (is this a bertkit run directory?)")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    run = (
        yaml.safe_load((run_dir / "run.yaml").read_text(encoding="utf-8"))
        if (run_dir / "run.yaml").is_file()
        else {}
    )
    sections = [
        (
            "Run",
            [
                ["task", str(run.get("task", "?"))],
                ["model", str(run.get("model", {}).get("name_or_path"))],
                ["evaluated on", str(metrics.get("split", "?"))],
                ["best dev", json.dumps(metrics.get("best_dev", {}))],
            ],
            ["", ""],
        ),
        ("Scores", *summary_table(metrics)),
        ("Per class", *per_class_table(metrics.get("after", {}))),
    ]
    plots = [(title, run_dir / name) for name, title in PLOTS.items() if (run_dir / name).is_file()]
    return to_html(run_dir, sections, plots) if fmt == "html" else to_markdown(run_dir, sections, plots)


def write_report(run_dir: str | Path, fmt: str = "md", out: str | Path | None = None) -> Path:
    path = Path(out) if out else Path(run_dir) / f"report.{fmt}"
    write_text(path, render_report(run_dir, fmt))
    return path


def summary_table(metrics: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Rows of every scalar metric, columns majority / before / after (those present)."""
    columns = [c for c in COLUMNS if c in metrics]
    names: list[str] = []
    for c in columns:
        names += [k for k, v in metrics[c].items() if isinstance(v, float) and k not in names]
    rows = [[name, *[fmt_number(metrics[c].get(name)) for c in columns]] for name in names]
    return rows, ["metric", *columns]


def per_class_table(after: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    table = after.get("per_class") or after.get("per_type") or {}
    rows = [
        [name, *[fmt_number(s.get(k)) for k in ("precision", "recall", "f1")], str(s.get("support", ""))]
        for name, s in table.items()
    ]
    return rows, ["class", "precision", "recall", "F1", "support"]


def fmt_number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


def to_markdown(run_dir: Path, sections: list, plots: list[tuple[str, Path]]) -> str:
    lines = [f"# bertkit report: {run_dir.name}", ""]
    for title, rows, header in sections:
        if not rows:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
    for title, path in plots:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    return "\n".join(lines)


def to_html(run_dir: Path, sections: list, plots: list[tuple[str, Path]]) -> str:
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>bertkit report: {html.escape(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
        "td:first-child{text-align:left}</style>",
        f"<h1>bertkit report: {html.escape(run_dir.name)}</h1>",
    ]
    for title, rows, header in sections:
        if not rows:
            continue
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>")
    for title, path in plots:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        alt = html.escape(title)
        parts.append(f"<h2>{alt}</h2><img alt='{alt}' src='data:image/png;base64,{data}'>")
    return "\n".join(parts) + "\n"
