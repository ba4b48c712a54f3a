"""The page of ``bertkit explain``: each input's words shaded by their attribution, from the JSON rows.

One self-contained HTML file (inline CSS, no scripts, every text HTML-escaped) beside a JSON lines file
of the raw scores; both are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from bertkit.atomic import write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
section { border-top: 1px solid #ccc; padding: .6em 0; }
.text { line-height: 2; font-size: 1.05em; }
.w { padding: .1em .15em; border-radius: .2em; }
.seg { color: #666; font-size: .8em; margin-right: .5em; }
.meta { color: #444; font-size: .9em; }
.flag { color: #b00; font-weight: bold; }
pre { background: #f5f5f5; padding: .4em; font-size: .8em; white-space: pre-wrap; }
"""
POSITIVE, NEGATIVE = (220, 38, 38), (37, 99, 235)  # red: for the target; blue: against it


def shade(score: float | None, scale: float) -> str:
    """Inline background for one word: red for a positive score, blue for a negative one."""
    if score is None or scale <= 0:
        return ""
    r, g, b = POSITIVE if score > 0 else NEGATIVE
    return f' style="background: rgba({r},{g},{b},{min(abs(score) / scale, 1.0):.3f})"'


def shaded_text(text: str, words: Sequence[dict[str, Any]], scores: Sequence[float | None] | None) -> str:
    """``text`` as HTML, each word in a span shaded by its score (the score shown on hover)."""
    values = [abs(s) for s in scores or () if s is not None]
    scale = max(values, default=0.0)
    out, at = [], 0
    for word, score in sorted(zip(words, scores or [None] * len(words)), key=lambda ws: ws[0]["start"]):
        out.append(escape(text[at : word["start"]]))
        hover = "" if score is None else f' title="{score:+.4f}"'
        piece = escape(text[word["start"] : word["end"]])
        out.append(f'<span class="w"{shade(score, scale)}{hover}>{piece}</span>')
        at = word["end"]
    out.append(escape(text[at:]))
    return "".join(out)


def section(row: dict[str, Any]) -> str:
    parts = [
        f"<section><h3>Input {row['input'] + 1}: {escape(str(row['target'] or '(nothing to explain)'))}</h3>"
    ]
    for segment, text in row["texts"].items():
        mine = [
            (w, s)
            for w, s in zip(row["words"], row["scores"] or [None] * len(row["words"]))
            if w["segment"] == segment
        ]
        words, scores = [w for w, _ in mine], [s for _, s in mine]
        label = f'<span class="seg">{escape(segment)}</span>'
        parts.append(f'<p class="text">{label}{shaded_text(text, words, scores)}</p>')
    meta = [f"method {escape(row['method'])}"]
    if row.get("target_score"):
        meta.append(f"score: {escape(row['target_score'])}")
    if row.get("windows") and row["windows"] > 1:
        meta.append(f"window {row['window'] + 1} of {row['windows']}")
    if row.get("completeness_error") is not None:
        meta.append(f"completeness error {100 * row['completeness_error']:.2f}%")
    parts.append(f'<p class="meta">{" · ".join(meta)}</p>')
    if row.get("flagged"):
        parts.append('<p class="flag">completeness error above 5%: these attributions are unreliable</p>')
    if row.get("note"):
        parts.append(f'<p class="meta">{escape(row["note"])}</p>')
    prediction = json.dumps(row["prediction"], ensure_ascii=False, indent=1)
    parts.append(
        f"<details open><summary>prediction</summary><pre>{escape(prediction)}</pre></details></section>"
    )
    return "\n".join(parts)


def render_page(rows: Sequence[dict[str, Any]], title: str = "bertkit explain") -> str:
    """The whole page: a legend, then one section per row."""
    legend = (
        '<p class="meta"><span class="w" style="background: rgba(220,38,38,.6)">red</span> words push the '
        'explained score up, <span class="w" style="background: rgba(37,99,235,.6)">blue</span> ones push '
        "it down; the deeper the shade, the larger the share. Hover a word for its score.</p>"
    )
    body = "\n".join(section(row) for row in rows)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{legend}\n{body}\n</body></html>\n"
    )


def scores_path(out: str | Path) -> Path:
    """Where the raw scores go: ``report.jsonl`` beside ``report.html``."""
    return Path(out).with_suffix(".jsonl")


def write_explanations(
    rows: Sequence[dict[str, Any]], out: str | Path, title: str = "bertkit explain"
) -> Path:
    """The page at ``out`` and the JSON lines beside it; returns the JSON lines' path."""
    lines = scores_path(out)
    write_text(lines, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    write_text(out, render_page(rows, title))
    return lines
