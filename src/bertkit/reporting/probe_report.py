"""The bias probe's report: a Markdown page and a plot, from the summary that ``probe.json`` holds.

They take that plain summary (no model, no inference), so a probe can be re-rendered from its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bertkit.atomic import atomic_path

FLIP_ROWS = 10  # flip rates listed per slot in the page (all of them are in probe.json)
PAIRING = {
    "index": "the same position in both groups",
    "all": "every word of one group with every word of the other",
}


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def span(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def header(summary: dict[str, Any]) -> list[str]:
    model = f"`{summary['model']}`" if summary.get("model") else "the model"
    boot = summary.get("bootstrap", 0)
    how = (
        f"95% percentile bootstrap intervals ({boot} resamples of templates and of words)"
        if boot
        else "no intervals (bootstrap 0)"
    )
    subject = f"class `{summary['class']}`" if summary.get("class") is not None else "the slot's word"
    return [
        "# Bias probe",
        "",
        f"{model} ({summary['task']}): {summary['templates']} templates filled every way, "
        f"{summary['fillings']} sentences. Measure `{summary['measure']}` ({subject}), the mean over "
        f"templates and words, each (template, word) counting once; {how}. Counterfactual pairs: fillings "
        f"of one template that differ only in the slot's group, with the word at "
        f"{PAIRING.get(summary.get('pairing', ''), summary.get('pairing'))}; a flip is a pair whose "
        + ("predicted labels differ" if summary["task"] != "ner" else "found-ness of the word differs")
        + ". Means and flip rates weight each template equally; n, pairs and flips are plain counts.",
        "",
    ]


def gap_table(gaps: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| slot | group a | group b | gap (a - b) | 95% interval | flip rate |",
        "|---|---|---|---|---|---|",
    ]
    for g in gaps:
        lines.append(
            f"| {g['slot']} | {g['a']} | {g['b']} | {g['gap']:+.3f} | {span(g['low'], g['high'])} "
            f"| {number(g['flip_rate'])} |"
        )
    return lines


def slot_tables(slot: str, data: dict[str, Any], main: str) -> list[str]:
    groups = data["groups"]
    others = [m for m in next(iter(groups.values()))["measures"] if m != main]
    lines = [f"## Slot `{{{slot}}}`: {data['templates']} templates, {data['fillings']} fillings", ""]
    if "expected_entity" in data:
        kinds = [e or "none (found as any entity)" for e in data["expected_entity"]]
        lines += [f"Expected entity type: {', '.join(kinds)}.", ""]
    lines.append(
        f"| group | n | words | {main} | 95% interval | " + " | ".join(others) + (" |" if others else "")
    )
    lines.append("|---" * (5 + len(others)) + "|")
    for group, g in groups.items():
        m = g["measures"][main]
        rest = "".join(f" {number(g['measures'][o]['mean'])} |" for o in others)
        lines.append(
            f"| {group} | {g['n']} | {g['words']} | {number(m['mean'])} | {span(m['low'], m['high'])} |{rest}"
        )
    flips = sorted(data["flips"], key=lambda f: -(f["rate"] if f["rate"] is not None else -1))
    shown = flips[:FLIP_ROWS]
    note = (
        f" (the {len(shown)} highest of {len(flips)}; all in probe.json)" if len(flips) > len(shown) else ""
    )
    lines += [
        "",
        f"Flip rates{note}:",
        "",
        "| group a | group b | pairs | flips | rate | 95% interval | mean abs change |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for f in shown:
        lines.append(
            f"| {f['a']} | {f['b']} | {f['pairs']} | {f['flips']} | {number(f['rate'])} "
            f"| {span(f['low'], f['high'])} | {number(f['mean_abs_change'])} |"
        )
    return [*lines, ""]


def probe_markdown(summary: dict[str, Any]) -> str:
    """``probe.md``: the largest gaps over all slots, then each slot's groups and flip rates."""
    lines = header(summary)
    lines += ["## Largest gaps", "", *gap_table(summary["largest_gaps"]), ""]
    for slot, data in summary["slots"].items():
        lines += slot_tables(slot, data, summary["measure"])
    return "\n".join(lines)


def plot_probe(summary: dict[str, Any], out_path: Path) -> None:
    """``probe.png``: one panel per slot, each group's mean of the measure with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    slots = summary["slots"]
    heights = [max(len(d["groups"]), 1) for d in slots.values()]
    fig, axes = plt.subplots(
        len(slots),
        1,
        figsize=(7, 1.0 + 0.3 * sum(heights) + 0.6 * len(slots)),
        dpi=110,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    main = summary["measure"]
    for ax, (slot, data) in zip(axes[:, 0], slots.items()):
        names = list(data["groups"])
        stats = [data["groups"][g]["measures"][main] for g in names]
        means = [s["mean"] for s in stats]
        errors = [
            [max(s["mean"] - (s["low"] if s["low"] is not None else s["mean"]), 0) for s in stats],
            [max((s["high"] if s["high"] is not None else s["mean"]) - s["mean"], 0) for s in stats],
        ]
        ax.errorbar(means, range(len(names)), xerr=errors, fmt="o", color="tab:blue", capsize=3)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"{{{slot}}}", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(f"{main} (mean, 95% interval)")
    fig.suptitle("bias probe")
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
