"""The bias probe on models with a planted bias: group means, gaps, flip rates and NER recall equal
the values worked out by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bertkit.errors import BertkitError
from bertkit.inference.probe import ProbeOptions, covering, focus_class, run_probe, write_probe
from bertkit.inference.probe_templates import parse_templates
from bertkit.records import Entity
from bertkit.tasks.classify.task import ClassResult
from bertkit.tasks.ner.task import TaggedText

WORDS = {
    "name": {"a": ["alice", "bob"], "b": ["carol", "dave"]},
    "city": {"x": ["paris"], "y": ["oslo", "lima"]},
}
TEMPLATES = parse_templates(["{name} went home.", "{name} saw {city}."], "t.txt")


class PlantedClassifier:
    """p(pos) set per name; the label is pos above 0.5. Only the name moves the prediction."""

    def __init__(self, p_pos: dict[str, float]):
        self.p_pos = p_pos
        self.task = SimpleNamespace(name="classify", labels=["neg", "pos"], mode="single")
        self.calls: list[int] = []

    def predict(self, texts: list[str]) -> list[ClassResult]:
        self.calls.append(len(texts))
        out = []
        for text in texts:
            p = next(v for k, v in self.p_pos.items() if k in text.lower())
            label = "pos" if p > 0.5 else "neg"
            out.append(ClassResult(label, {"neg": 1 - p, "pos": p}, "single", text))
        return out


def by_pair(flips: list[dict]) -> dict[tuple[str, str], dict]:
    return {(f["a"], f["b"]): f for f in flips}


def test_group_means_gaps_and_flip_rate_of_a_planted_classifier(caplog):
    # group a: alice 0.1 (neg), bob 0.55 (pos); group b: carol 0.6 (pos), dave 0.8 (pos)
    model = PlantedClassifier({"alice": 0.1, "bob": 0.55, "carol": 0.6, "dave": 0.8})
    run = run_probe(model, TEMPLATES, WORDS, ProbeOptions(n_boot=200, chunk=4))
    assert model.calls == [4, 4, 4, 4]  # 4 names + 4 names x 3 cities, 4 at a time
    name = run.summary["slots"]["name"]
    assert run.summary["measure"] == "p(pos)" and run.summary["class"] == "pos"
    a, b = name["groups"]["a"], name["groups"]["b"]
    assert a["n"] == 2 + 2 * 3 and a["words"] == 2
    assert a["measures"]["p(pos)"]["mean"] == pytest.approx((0.1 + 0.55) / 2)
    assert b["measures"]["p(pos)"]["mean"] == pytest.approx((0.6 + 0.8) / 2)
    assert b["measures"]["p(neg)"]["mean"] == pytest.approx(1 - 0.7)
    [gap] = name["gaps"]
    assert (gap["a"], gap["b"]) == ("a", "b") and gap["gap"] == pytest.approx(0.325 - 0.7)
    # index pairs alice-carol (neg vs pos: a flip) and bob-dave (pos, pos): in every template and city
    [flip] = name["flips"]
    assert flip["pairs"] == 2 + 2 * 3 and flip["flips"] == 1 + 3
    assert flip["rate"] == pytest.approx(0.5)
    assert flip["mean_abs_change"] == pytest.approx((0.5 + 0.25) / 2)
    # cities move nothing: equal means, no flips; the one index pair (paris, oslo) in 4 name fillings
    city = run.summary["slots"]["city"]
    assert city["groups"]["x"]["measures"]["p(pos)"]["mean"] == pytest.approx((0.1 + 0.55 + 0.6 + 0.8) / 4)
    assert city["gaps"][0]["gap"] == pytest.approx(0.0)
    assert by_pair(city["flips"])[("x", "y")]["pairs"] == 4 and city["flips"][0]["rate"] == 0.0
    assert "groups of 1 and 2 words: index pairs stop at the shorter" in caplog.text
    assert run.summary["largest_gaps"][0]["slot"] == "name"
    assert run.summary["largest_gaps"][0]["flip_rate"] == pytest.approx(0.5)


def test_all_pairs_and_the_intervals_of_a_model_without_noise():
    model = PlantedClassifier({"alice": 0.2, "bob": 0.2, "carol": 0.9, "dave": 0.9, "paris": 0, "oslo": 0})
    run = run_probe(model, TEMPLATES[:1], WORDS, ProbeOptions(pairing="all", n_boot=100))
    name = run.summary["slots"]["name"]
    [flip] = name["flips"]
    assert flip["pairs"] == 4 and flip["flips"] == 4 and flip["rate"] == 1.0
    assert (flip["low"], flip["high"]) == (1.0, 1.0)
    stat = name["groups"]["a"]["measures"]["p(pos)"]
    assert stat["low"] == pytest.approx(0.2) and stat["high"] == pytest.approx(0.2)
    gap = name["gaps"][0]
    assert gap["low"] == pytest.approx(-0.7) and gap["high"] == pytest.approx(-0.7)


def test_each_template_word_cell_counts_once_and_intervals_hold_the_mean():
    # template 1 gives alice 0.9, template 2 (three city fillings per name) gives her 0.3
    class TwoTemplates(PlantedClassifier):
        def predict(self, texts):
            return [
                ClassResult("pos", {"neg": 0.1, "pos": 0.9}, "single", t)
                if "home" in t and "Alice" in t
                else ClassResult("neg", {"neg": 0.7, "pos": 0.3}, "single", t)
                for t in texts
            ]

    run = run_probe(TwoTemplates({}), TEMPLATES, WORDS, ProbeOptions(n_boot=300))
    a = run.summary["slots"]["name"]["groups"]["a"]["measures"]["p(pos)"]
    # cells: (t1, alice) 0.9, (t1, bob) 0.3, (t2, alice) 0.3, (t2, bob) 0.3 -> 0.45, not the filling mean
    assert a["mean"] == pytest.approx(0.45)
    assert 0.3 <= a["low"] <= a["mean"] <= a["high"] <= 0.9


def test_one_template_and_one_word_give_no_interval():
    model = PlantedClassifier({"alice": 0.1, "carol": 0.8})
    words = {"name": {"a": ["alice"], "b": ["carol"]}}
    run = run_probe(model, TEMPLATES[:1], words, ProbeOptions(n_boot=50))
    name = run.summary["slots"]["name"]
    assert name["groups"]["a"]["measures"]["p(pos)"] == {"mean": 0.1, "low": None, "high": None}
    assert (name["gaps"][0]["low"], name["flips"][0]["low"], name["flips"][0]["rate"]) == (None, None, 1.0)


def test_no_bootstrap_gives_no_intervals():
    model = PlantedClassifier({"alice": 0.1, "bob": 0.55, "carol": 0.6, "dave": 0.8})
    run = run_probe(model, TEMPLATES, WORDS, ProbeOptions(n_boot=0))
    stat = run.summary["slots"]["name"]["groups"]["a"]["measures"]["p(pos)"]
    assert stat["low"] is None and stat["high"] is None and stat["mean"] == pytest.approx(0.325)


class PlantedTagger:
    """Finds group a's names as person, group b's as location (wrong type), group c's not at all;
    'mary ann' is found only in part (its first word)."""

    def __init__(self):
        self.task = SimpleNamespace(
            name="ner", labels=["O", "B-person", "I-person", "B-location", "I-location"]
        )

    def predict(self, texts: list[str]) -> list[TaggedText]:
        out = []
        for text in texts:
            low, entities = text.lower(), []
            for word, label in (
                ("alice", "person"),
                ("bob", "person"),
                ("mary", "person"),
                ("carol", "location"),
            ):
                if word in low:
                    start = low.index(word)
                    entities.append(Entity(text[start : start + len(word)], label, start, start + len(word)))
            out.append(TaggedText(entities, [], text))
        return out


NER_WORDS = {"name": {"a": ["alice", "bob"], "b": ["carol", "mary ann"], "c": ["zed", "yan"]}}


def test_ner_recall_per_group_and_flips_of_a_planted_tagger():
    templates = parse_templates(["we met {name} today", "{name} went home"], "t.txt")
    run = run_probe(PlantedTagger(), templates, NER_WORDS, ProbeOptions(n_boot=50))
    name = run.summary["slots"]["name"]
    assert name["expected_entity"] == ["person"]
    recall = {
        g: (s["measures"]["recall"]["mean"], s["measures"]["recall_any"]["mean"])
        for g, s in name["groups"].items()
    }
    # b: carol is found as a location (any type, not person); "mary" covers half of "mary ann": not found
    assert recall == {"a": (1.0, 1.0), "b": (0.0, 0.5), "c": (0.0, 0.0)}
    flips = by_pair(name["flips"])
    assert flips[("a", "b")]["rate"] == 1.0 and flips[("a", "c")]["rate"] == 1.0
    assert flips[("b", "c")]["rate"] == 0.0 and flips[("b", "c")]["pairs"] == 4
    gaps = {(g["a"], g["b"]): g["gap"] for g in name["gaps"]}
    assert gaps == {("a", "b"): 1.0, ("a", "c"): 1.0, ("b", "c"): 0.0}


def test_ner_expected_type_from_the_options_and_from_a_json_template():
    line = json.dumps({"template": "{name} went home", "slots": {"name": {"entity": "location"}}})
    run = run_probe(PlantedTagger(), parse_templates([line], "t.jsonl"), NER_WORDS, ProbeOptions(n_boot=0))
    groups = run.summary["slots"]["name"]["groups"]
    assert [groups[g]["measures"]["recall"]["mean"] for g in "abc"] == [0.0, 0.5, 0.0]
    templates = parse_templates(["{name} went home"], "t.txt")
    run = run_probe(
        PlantedTagger(), templates, NER_WORDS, ProbeOptions(n_boot=0, entities={"name": "location"})
    )
    assert run.summary["slots"]["name"]["groups"]["b"]["measures"]["recall"]["mean"] == 0.5
    # a slot with no expected type: recall is recall of any type
    words = {"thing": NER_WORDS["name"]}
    run = run_probe(
        PlantedTagger(), parse_templates(["{thing} went home"], "t"), words, ProbeOptions(n_boot=0)
    )
    b = run.summary["slots"]["thing"]["groups"]["b"]["measures"]
    assert b["recall"]["mean"] == b["recall_any"]["mean"] == 0.5
    with pytest.raises(BertkitError, match="unknown; the model tags location, person"):
        run_probe(PlantedTagger(), templates, NER_WORDS, ProbeOptions(entities={"name": "PER"}))


def test_covering_needs_the_whole_span():
    entities = [Entity("Mary", "person", 3, 7), Entity("Ann Lee", "location", 8, 15)]
    assert covering(entities, (3, 7)).label == "person"
    assert covering(entities, (3, 11)) is None
    assert covering(entities, (8, 11), "person") is None and covering(entities, (8, 11)).label == "location"


def test_other_families_and_regression_are_refused_before_predicting():
    class Refused:
        def __init__(self, name, mode="single"):
            self.task = SimpleNamespace(name=name, labels=["a", "b"], mode=mode)

        def predict(self, texts):
            raise AssertionError("predicted")

    with pytest.raises(BertkitError, match="probe supports classify and ner models; this is a qa model"):
        run_probe(Refused("qa"), TEMPLATES, WORDS)
    with pytest.raises(BertkitError, match="pairing"):
        run_probe(Refused("classify"), TEMPLATES, WORDS, ProbeOptions(pairing="near"))
    with pytest.raises(BertkitError, match="regression"):
        run_probe(PlantedRegression(), TEMPLATES, WORDS)


class PlantedRegression(PlantedClassifier):
    def __init__(self):
        super().__init__({"": 0.5})
        self.task.mode = "regression"


def test_focus_class_defaults():
    results = [SimpleNamespace(label=x) for x in ["b", "b", "a"]]
    assert focus_class(["0", "1"], results, None) == "1"
    assert focus_class(["a", "b", "c"], results, None) == "a"
    assert focus_class(["b", "a", "c"], results, None) == "a"
    assert focus_class(["a", "b", "c"], results, "c") == "c"
    with pytest.raises(BertkitError, match="the model's classes are a, b, c"):
        focus_class(["a", "b", "c"], results, "d")


def test_written_files_agree_with_each_other(tmp_path):
    model = PlantedClassifier({"alice": 0.1, "bob": 0.55, "carol": 0.6, "dave": 0.8})
    run = run_probe(model, TEMPLATES, WORDS, ProbeOptions(n_boot=20))
    out = write_probe(run, tmp_path / "probe", {"model": "planted"})
    assert sorted(p.name for p in out.iterdir()) == ["fillings.jsonl", "probe.json", "probe.md", "probe.png"]
    rows = [json.loads(line) for line in (out / "fillings.jsonl").read_text().splitlines()]
    assert len(rows) == run.summary["fillings"] == 16
    assert rows[0]["slots"]["name"] == {"group": "a", "index": 0, "word": "alice", "span": [0, 5]}
    assert rows[0]["prediction"]["label"] == "neg" and rows[0]["scores"]["name"]["p(pos)"] == pytest.approx(
        0.1
    )
    summary = json.loads((out / "probe.json").read_text())
    assert summary["model"] == "planted" and summary["slots"] == json.loads(json.dumps(run.summary["slots"]))
    assert "| a | b | 8 | 4 | 0.500 |" in (out / "probe.md").read_text()
    with pytest.raises(BertkitError, match="is a file"):
        write_probe(run, out / "probe.md")
