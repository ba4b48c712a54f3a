"""The probe's page and plot from a hand-made summary: numbers land in the right cells, long flip lists
are cut with a note, and missing intervals are drawn and written as such."""

from __future__ import annotations

import itertools

from bertkit.reporting.probe_report import FLIP_ROWS, plot_probe, probe_markdown


def group(mean, low, high, other=0.5):
    return {
        "n": 4,
        "words": 2,
        "measures": {"p(1)": {"mean": mean, "low": low, "high": high}, "p(0)": {"mean": other}},
    }


def summary() -> dict:
    names = [f"g{i}" for i in range(6)]  # 15 pairs: more than the page lists
    flips = [
        {
            "a": a,
            "b": b,
            "pairs": 15,
            "flips": k,
            "rate": k / 15,
            "low": None,
            "high": None,
            "mean_abs_change": 0.1,
        }
        for k, (a, b) in enumerate(itertools.combinations(names, 2))
    ]
    flips[0]["rate"] = None  # groups no template fills together
    slots = {
        "name": {
            "templates": 2,
            "fillings": 24,
            "groups": {g: group(0.1 * i, 0.1 * i - 0.05, 0.1 * i + 0.05) for i, g in enumerate(names)},
            "gaps": [],
            "flips": flips,
        },
        "religion": {
            "templates": 1,
            "fillings": 2,
            "groups": {"x": group(0.9, None, None), "y": group(0.2, 0.1, 0.3)},
            "gaps": [],
            "flips": [
                {
                    "a": "x",
                    "b": "y",
                    "pairs": 1,
                    "flips": 1,
                    "rate": 1.0,
                    "low": 1.0,
                    "high": 1.0,
                    "mean_abs_change": 0.7,
                }
            ],
        },
    }
    largest = [
        {"slot": "religion", "a": "x", "b": "y", "gap": 0.7, "low": 0.6, "high": 0.8, "flip_rate": 1.0}
    ]
    return {
        "model": "m", "task": "classify", "measure": "p(1)", "class": "1", "pairing": "index",
        "bootstrap": 100, "templates": 3, "fillings": 26, "slots": slots, "largest_gaps": largest,
    }  # fmt: skip


def test_page_has_the_gaps_groups_and_the_highest_flip_rates():
    page = probe_markdown(summary())
    assert "| religion | x | y | +0.700 | [0.600, 0.800] | 1.000 |" in page
    assert "| g3 | 4 | 2 | 0.300 | [0.250, 0.350] | 0.500 |" in page
    assert "| x | 4 | 2 | 0.900 | - | 0.500 |" in page
    assert f"(the {FLIP_ROWS} highest of 15; all in probe.json)" in page
    assert "| g4 | g5 | 15 | 14 | 0.933 | - | 0.100 |" in page
    assert page.index("| g4 | g5 |") < page.index("| g3 | g5 |")  # highest first
    assert "| g0 | g1 |" not in page  # no rate: listed last, cut
    assert "class `1`" in page and "100 resamples" in page


def test_ner_page_says_what_counts_as_found():
    data = summary()
    data.update(task="ner", measure="recall", **{"class": None})
    for slot in data["slots"].values():
        for g in slot["groups"].values():
            g["measures"] = {"recall": g["measures"]["p(1)"], "recall_any": {"mean": 1.0}}
    data["slots"]["name"]["expected_entity"] = ["person"]
    data["slots"]["religion"]["expected_entity"] = [None]
    page = probe_markdown(data)
    assert "Expected entity type: person." in page and "none (found as any entity)" in page
    assert "found-ness of the word differs" in page
    assert "| group | n | words | recall | 95% interval | recall_any |" in page


def test_plot_is_written_with_and_without_intervals(tmp_path):
    plot_probe(summary(), tmp_path / "probe.png")
    data = (tmp_path / "probe.png").read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["probe.png"]  # no temporary file left
