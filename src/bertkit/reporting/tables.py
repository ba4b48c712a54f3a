"""Plain-text tables of metrics, as the CLI prints them (before/after columns, entity P/R/F1)."""

from __future__ import annotations

from typing import Any


def format_table(columns: dict[str, dict], title: str = "") -> str:
    """A plain-text table of the metrics in ``columns`` (e.g. {"before": {...}, "after": {...}})."""
    if all("per_type" in m for m in columns.values()):
        return format_entity_table(columns, title)
    names = [k for k, v in next(iter(columns.values())).items() if isinstance(v, float)]
    width = max([14, *(len(name) + 1 for name in names)])  # names are never cut (macro_precision)
    lines = [title] if title else []
    lines.append(f"{'':<{width}}" + "".join(f"{c:>12}" for c in columns))
    for name in names:
        cells = "".join(
            f"{m[name]:>12.4f}" if isinstance(m.get(name), float) else f"{'-':>12}" for m in columns.values()
        )
        lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def format_entity_table(metrics: dict[str, dict], title: str = "") -> str:
    """A plain-text table of P/R/F1 for each column in ``metrics`` ({"before": {...}, "after": {...}})."""
    columns = list(metrics)
    types = sorted({t for m in metrics.values() for t in m.get("per_type", {})})
    head = f"{'':<18}" + "".join(f"{c:>24}" for c in columns)
    sub = f"{'':<18}" + "".join(f"{'P':>8}{'R':>8}{'F1':>8}" for _ in columns)
    lines = [title, head, sub] if title else [head, sub]

    def row(name: str, get: Any) -> str:
        cells = ""
        for c in columns:
            m = get(metrics[c])
            cells += f"{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}" if m else f"{'-':>24}"
        return f"{name[:18]:<18}{cells}"

    for t in types:
        lines.append(row(t, lambda m, t=t: m.get("per_type", {}).get(t)))
    lines.append(row("micro avg", lambda m: m))
    return "\n".join(lines)
