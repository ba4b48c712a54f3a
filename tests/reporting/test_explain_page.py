"""The explanation page: one self-contained file, every word shown, input text escaped, not markup."""

from __future__ import annotations

import json

from bertkit.reporting.explain_page import render_page, shaded_text, write_explanations


def row(text: str, words: list[tuple[int, int]], scores: list[float | None]) -> dict:
    return {
        "input": 0,
        "texts": {"text": text},
        "words": [{"text": text[s:e], "start": s, "end": e, "segment": "text"} for s, e in words],
        "prediction": {"text": text, "label": "pos"},
        "method": "ig",
        "target": "class pos",
        "target_score": "log-probability of class pos",
        "window": 0,
        "windows": 1,
        "scores": scores,
        "completeness_error": 0.07,
        "flagged": True,
        "note": "",
    }


def test_script_in_the_input_is_escaped_and_every_word_is_on_the_page():
    text = "hi <script>alert(1)</script> & bye"
    words = [(0, 2), (3, 4), (4, 10), (10, 11), (11, 19), (29, 30), (31, 34)]
    page = render_page([row(text, words, [0.5, -0.1, 0.2, None, 0.0, 0.1, -0.4])])
    assert "<script>" not in page and "&lt;script&gt;" in page
    for word in ("hi", "&lt;", "script", "alert(1)", "&amp;", "bye"):
        assert f">{word}</span>" in page
    assert "completeness error 7.00%" in page and "above 5%" in page


def test_the_page_is_one_file_with_no_external_resources():
    page = render_page([row("bob saw oslo", [(0, 3), (4, 7), (8, 12)], [1.0, 0.0, -1.0])])
    for external in ("<link", "<script", "src=", "http://", "https://", "@import"):
        assert external not in page
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page


def test_signs_shade_red_and_blue_scaled_by_the_largest_score():
    html = shaded_text("a b", [{"start": 0, "end": 1}, {"start": 2, "end": 3}], [2.0, -1.0])
    assert 'rgba(220,38,38,1.000)" title="+2.0000">a</span> ' in html
    assert 'rgba(37,99,235,0.500)" title="-1.0000">b</span>' in html


def test_the_scores_go_to_json_lines_beside_the_page(tmp_path):
    rows = [row("bob saw oslo", [(0, 3), (4, 7), (8, 12)], [1.0, 0.0, -1.0])]
    lines = write_explanations(rows, tmp_path / "report.html")
    assert lines == tmp_path / "report.jsonl"
    assert [json.loads(line) for line in lines.read_text().splitlines()] == rows
    assert (tmp_path / "report.html").read_text().count("<section>") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.jsonl"]
