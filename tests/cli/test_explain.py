"""``bertkit explain`` end to end on tiny saved models of every family it explains: the page and the
JSON lines appear, every input is there with a score per word, and the targets follow the family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inference.saved_models import save_untrained

from bertkit.cli.app import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INPUTS = {
    "classify": ("texts.txt", ["alice went to paris", "bob <b>saw</b> oslo"]),
    "ner": ("texts.txt", ["alice went to paris", "bob smith met carol in tokyo today"]),
    "qa": (
        "questions.jsonl",
        [
            json.dumps(
                {"id": "q1", "question": "where did alice go", "context": "alice went to paris and home"}
            ),
            json.dumps({"id": "q2", "question": "who met bob", "context": "carol met bob in lima today"}),
        ],
    ),
    "re": (
        "relations.jsonl",
        [
            json.dumps(
                {
                    "text": "bob saw paris today",
                    "head": {"start": 0, "end": 3},
                    "tail": {"start": 8, "end": 13},
                }
            ),
            json.dumps(
                {
                    "text": "alice met dave in oslo",
                    "head": {"start": 10, "end": 14},
                    "tail": {"start": 0, "end": 5},
                }
            ),
        ],
    ),
}


def explain(task: str, tiny_bert: Path, tmp_path: Path, *extra: str) -> list[dict]:
    model = save_untrained(task, tiny_bert, tmp_path / "model")
    name, lines = INPUTS[task]
    source = tmp_path / name
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "report.html"
    argv = ["-q", "explain", "--model", str(model), "--input", str(source), "--out", str(out)]
    assert main([*argv, "--threads", "1", "--n-steps", "16", *extra]) == 0
    page = out.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert {row["input"] for row in rows} == set(range(len(lines)))
    for row in rows:
        for word in row["words"]:
            assert f">{word['text']}</span>" in page.replace("&lt;", "<").replace("&gt;", ">")
    return rows


def scored(row: dict) -> None:
    assert len(row["scores"]) == len(row["words"])
    assert all(isinstance(s, float) for s in row["scores"])
    assert row["completeness_error"] is not None


def test_classify_explains_the_predicted_class_and_escapes_markup(tiny_bert, tmp_path):
    rows = explain("classify", tiny_bert, tmp_path)
    assert len(rows) == 2
    for row in rows:
        scored(row)
        assert row["target"] == f"class {row['prediction']['label']}"
    assert "<b>" not in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_classify_explains_a_named_class_by_occlusion(tiny_bert, tmp_path):
    rows = explain("classify", tiny_bert, tmp_path, "--target", "mixed", "--method", "occlusion")
    assert [row["target"] for row in rows] == ["class mixed", "class mixed"]


def test_ner_explains_each_predicted_entity(tiny_bert, tmp_path):
    rows = explain("ner", tiny_bert, tmp_path)
    for row in rows:
        entities = row["prediction"]["entities"]
        if row["target"] is None:  # a random model may find no entity in a sentence
            assert entities == [] and row["note"] == "no entity predicted"
            continue
        scored(row)
        assert any(row["target"] == f"{e['label']} {e['text']!r}" for e in entities)
    counts = {i: sum(r["input"] == i and r["target"] is not None for r in rows) for i in (0, 1)}
    assert counts == {
        i: len(next(r for r in rows if r["input"] == i)["prediction"]["entities"]) for i in (0, 1)
    }


def test_qa_explains_the_start_and_the_end_of_the_answer(tiny_bert, tmp_path):
    rows = explain("qa", tiny_bert, tmp_path)
    assert [row["input"] for row in rows] == [0, 0, 1, 1]
    for row in rows:
        scored(row)
        assert {w["segment"] for w in row["words"]} == {"question", "context"}
    assert rows[0]["target"].startswith("answer start") and rows[1]["target"].startswith("answer end")


def test_re_explains_the_predicted_relation(tiny_bert, tmp_path):
    rows = explain("re", tiny_bert, tmp_path, "--method", "attention")
    for row in rows:
        assert row["target"] == f"relation {row['prediction']['label']}"
        assert len(row["scores"]) == len(row["words"])
