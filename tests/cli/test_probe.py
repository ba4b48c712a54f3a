"""`bertkit probe` end to end on tiny random classify and ner models: the files are written and the
numbers of probe.json follow from the predictions in fillings.jsonl."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest
from inference.saved_models import save_untrained

from bertkit.cli.app import main
from bertkit.inference.predictor import Predictor

TEMPLATES = "# tiny vocabulary\n{name} went to {city} .\nthe old home with {name} .\n"
WORDS = """\
name:
  one: [alice, bob]
  two: [carol, dave]
  three: [erin, frank]
city:
  x: [paris, oslo]
  y: [lima, tokyo]
"""


@pytest.fixture(scope="module")
def models(tiny_bert, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probe_models")
    return {task: save_untrained(task, tiny_bert, root / task, seed=1) for task in ("classify", "ner")}


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    templates, words = tmp_path / "templates.txt", tmp_path / "words.yaml"
    templates.write_text(TEMPLATES, encoding="utf-8")
    words.write_text(WORDS, encoding="utf-8")
    return templates, words


def probe(model: Path, templates: Path, words: Path, out: Path, *extra: str) -> int:
    return main(
        ["-q", "probe", "--model", str(model), "--templates", str(templates), "--words", str(words),
         "--out", str(out), "--threads", "1", "--bootstrap", "50", *extra]
    )  # fmt: skip


def cell_means(rows: list[dict], slot: str, measure: str) -> dict[str, float]:
    """Each group's mean over (template, word) cells, from fillings.jsonl alone."""
    cells = defaultdict(list)
    for row in rows:
        if slot in row["slots"]:
            choice = row["slots"][slot]
            cells[(choice["group"], row["template"], choice["index"])].append(row["scores"][slot][measure])
    per_group = defaultdict(list)
    for (group, _, _), values in cells.items():
        per_group[group].append(sum(values) / len(values))
    return {g: sum(v) / len(v) for g, v in per_group.items()}


def flip_counts(rows: list[dict], slot: str, outcome, pairing: str = "index") -> dict:
    """(pairs, flips) per pair of groups: same template, same other words, and the same position in
    both groups (index) or any positions (all)."""
    keyed = {}
    for row in rows:
        if slot in row["slots"]:
            rest = tuple(sorted((s, c["word"]) for s, c in row["slots"].items() if s != slot))
            c = row["slots"][slot]
            keyed[(row["template"], rest, c["group"], c["index"])] = outcome(row)
    groups = sorted({k[2] for k in keyed}, key=["one", "two", "three", "x", "y"].index)
    out = {}
    for a, b in itertools.combinations(groups, 2):
        pairs = [
            (keyed[x], keyed[y])
            for x, y in itertools.product(keyed, keyed)
            if x[2] == a and y[2] == b and x[:2] == y[:2] and (pairing == "all" or x[3] == y[3])
        ]
        out[(a, b)] = (len(pairs), sum(p != q for p, q in pairs))
    return out


def read_out(out: Path) -> tuple[dict, list[dict]]:
    assert sorted(p.name for p in out.iterdir()) == ["fillings.jsonl", "probe.json", "probe.md", "probe.png"]
    assert (out / "probe.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "probe.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (out / "fillings.jsonl").read_text(encoding="utf-8").splitlines()]
    return summary, rows


def test_probe_a_classifier_end_to_end(models, inputs, tmp_path):
    out = tmp_path / "out"
    assert probe(models["classify"], *inputs, out, "--class", "mixed") == 0
    summary, rows = read_out(out)
    assert summary["fillings"] == len(rows) == 6 * 4 + 6 and summary["measure"] == "p(mixed)"
    assert summary["model"] == str(models["classify"])
    for slot in ("name", "city"):
        data = summary["slots"][slot]
        for measure in ("p(mixed)", "p(neg)", "p(pos)"):
            means = cell_means(rows, slot, measure)
            assert {g: s["measures"][measure]["mean"] for g, s in data["groups"].items()} == pytest.approx(
                means,
                abs=1e-6,  # probe.json rounds to 6 digits
            )
        counts = flip_counts(rows, slot, lambda row: row["prediction"]["label"])
        assert {(f["a"], f["b"]): (f["pairs"], f["flips"]) for f in data["flips"]} == counts
    assert {g: s["n"] for g, s in summary["slots"]["name"]["groups"].items()} == {
        "one": 10,
        "two": 10,
        "three": 10,
    }
    for row in rows:  # each score is the probability the prediction gave
        assert row["scores"]["name"]["p(mixed)"] == pytest.approx(
            row["prediction"]["probs"]["mixed"], abs=1e-5
        )
    page = (out / "probe.md").read_text(encoding="utf-8")
    assert "## Slot `{name}`" in page and "## Largest gaps" in page


def test_probe_a_tagger_end_to_end(models, inputs, tmp_path):
    out = tmp_path / "out"
    assert probe(models["ner"], *inputs, out, "--pairs", "all") == 0
    summary, rows = read_out(out)
    assert summary["slots"]["name"]["expected_entity"] == ["PER"]
    assert summary["slots"]["city"]["expected_entity"] == [None]
    for row in rows:  # found-ness recomputed from the predicted entities' offsets
        for slot, choice in row["slots"].items():
            start, end = choice["span"]
            kinds = {
                e["label"] for e in row["prediction"]["entities"] if e["start"] <= start and e["end"] >= end
            }
            assert row["scores"][slot]["recall_any"] == float(bool(kinds))
            assert row["scores"][slot]["recall"] == float("PER" in kinds if slot == "name" else bool(kinds))
    data = summary["slots"]["name"]
    means = cell_means(rows, "name", "recall")
    assert {g: s["measures"]["recall"]["mean"] for g, s in data["groups"].items()} == pytest.approx(
        means, abs=1e-6
    )
    counts = flip_counts(rows, "name", lambda row: row["scores"]["name"]["recall"], "all")
    # --pairs all: every word of one group with every word of the other, 2 x 2 per template and city
    assert all(pairs == 4 * 4 + 4 for pairs, _ in counts.values())
    assert {(f["a"], f["b"]): (f["pairs"], f["flips"]) for f in data["flips"]} == counts


def test_bad_templates_fail_before_the_model_loads(models, inputs, tmp_path, capsys, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("loaded the model")

    monkeypatch.setattr(Predictor, "load", no_load)
    templates, words = inputs
    templates.write_text("{name} ok\n{nmae} went home\n", encoding="utf-8")
    assert probe(models["classify"], templates, words, tmp_path / "out") == 2
    assert f"{templates}:2: unknown slot {{nmae}}" in capsys.readouterr().err
    assert probe(models["classify"], templates, words, tmp_path / "out", "--entity", "name") == 2
    assert "--entity 'name': expected SLOT=TYPE" in capsys.readouterr().err
    assert main(["probe", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_model_of_another_family_is_refused(tiny_bert, inputs, tmp_path, capsys):
    model = save_untrained("re", tiny_bert, tmp_path / "re")
    assert probe(model, *inputs, tmp_path / "out") == 2
    assert "probe supports classify and ner models; this is a re model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
