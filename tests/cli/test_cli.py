"""The `bertkit` command end to end on a tiny model: finetune, evaluate, predict, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import ner_command, synthetic_sentence, write_conll
from transformers import AutoModelForTokenClassification, AutoTokenizer

import bertkit
from bertkit.cli.app import main


@pytest.fixture(scope="module")
def trained(tiny_bert, synthetic_ner, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    quick = ["--epochs", "12", "--lr", "3e-3", "--batch-size", "16", "--max-length", "16", "--stride", "4"]
    code = main(ner_command(tiny_bert, synthetic_ner, out, *quick))
    assert code == 0
    return out


def entity_spans(lines: list[str], column: int) -> set[tuple[int, int, int, str]]:
    """``(sentence, start, end, type)`` of the IOB2 entities in a CoNLL column, read here without bertkit
    or seqeval, so that the metrics can be checked against them."""
    found, sentence, start, kind = set(), 0, None, None
    rows = [line.split("\t") if line.strip() else None for line in lines] + [None]
    for i, row in enumerate(rows):
        tag = row[column] if row else "O"
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            found.add((sentence, start, i, kind))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = i, tag[2:]
        sentence += row is None
    return found


def test_finetune_writes_the_run_directory(trained, synthetic_ner):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "run.yaml",
        "metrics.json",
        "train_log.jsonl",
        "curves.png",
    ):
        assert (trained / name).is_file(), name
    assert not list(trained.glob(".*tmp")) and not list(trained.glob(".saving-*"))
    metrics = json.loads((trained / "metrics.json").read_text())
    for when in ("before", "after"):
        assert {"precision", "recall", "f1", "per_type"} <= metrics[when].keys()
    # names and cities are easy to learn: a random head finds next to none, the trained one nearly all
    assert metrics["before"]["f1"] < 0.3
    assert metrics["after"]["f1"] >= 0.95
    assert all(scores["f1"] >= 0.9 for scores in metrics["after"]["per_type"].values())
    gold = entity_spans(synthetic_ner["test"].read_text().splitlines(), column=1)
    support = {kind: sum(e[3] == kind for e in gold) for kind in ("PER", "LOC")}
    assert {kind: s["support"] for kind, s in metrics["after"]["per_type"].items()} == support
    model = AutoModelForTokenClassification.from_pretrained(trained)
    assert set(model.config.id2label.values()) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}
    assert AutoTokenizer.from_pretrained(trained).tokenize("alice smith") == ["alice", "smith"]


def test_run_yaml_repeats_the_run(trained, tmp_path):
    again = tmp_path / "again"
    args = ["-q", "finetune", "ner", "--config", str(trained / "run.yaml"), "--out", str(again)]
    assert main(args) == 0
    first = json.loads((trained / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert first["after"] == second["after"] and first["before"] == second["before"]


def test_evaluate_prints_and_writes_metrics(trained, synthetic_ner, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(trained),
                "--data",
                str(synthetic_ner["test"]),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())
    expected = json.loads((trained / "metrics.json").read_text())["after"]
    assert metrics["f1"] == pytest.approx(expected["f1"])
    assert "micro avg" in capsys.readouterr().out


def test_predict_conll_tags_every_token_of_long_sentences(trained, tmp_path):
    rng = random.Random(1)
    sentences = [synthetic_sentence(rng, n) for n in (1, 5, 60, 140, 9)]  # windows hold 14 sub-words
    src = write_conll(tmp_path / "in.conll", sentences)
    out = tmp_path / "out.conll"
    assert main(["-q", "predict", "--model", str(trained), "--input", str(src), "--out", str(out)]) == 0
    lines_in = src.read_text().splitlines()
    lines_out = out.read_text().splitlines()
    assert len(lines_in) == len(lines_out)
    gold, pred = [], []
    for a, b in zip(lines_in, lines_out):
        if not a.strip():
            assert not b.strip()
            continue
        assert b.startswith(a + "\t") and len(b.split("\t")) == 3
        gold.append(a.split("\t")[1])
        pred.append(b.split("\t")[2])
    assert sum(g == p for g, p in zip(gold, pred)) / len(gold) > 0.95


def test_predicted_conll_gives_every_non_blank_line_the_same_columns(trained, tmp_path):
    # -DOCSTART- lines get an O (conlleval refuses lines of other widths); a GermEval-style comment
    # line is copied as it is
    src = tmp_path / "docs.conll"
    src.write_text(
        "-DOCSTART-\tO\n\n#\tsource\tdate\nalice\tB-PER\nwent\tO\n\n-DOCSTART-\tO\n\nparis\tB-LOC\n"
    )
    out = tmp_path / "docs.pred.conll"
    assert main(["-q", "predict", "--model", str(trained), "--input", str(src), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "-DOCSTART-\tO\tO" and lines[6] == "-DOCSTART-\tO\tO"
    assert lines[2] == "#\tsource\tdate"
    assert [len(line.split("\t")) for line in lines if line.strip() and not line.startswith("#")] == [3] * 5


def test_predictions_score_what_metrics_json_says(trained, synthetic_ner, tmp_path):
    out = tmp_path / "test.pred.conll"
    args = [
        "-q",
        "predict",
        "--model",
        str(trained),
        "--input",
        str(synthetic_ner["test"]),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    gold, pred = entity_spans(lines, column=1), entity_spans(lines, column=2)
    correct = len(gold & pred)
    f1 = 2 * correct / (len(gold) + len(pred))
    assert f1 == pytest.approx(json.loads((trained / "metrics.json").read_text())["after"]["f1"])


def test_evaluate_uses_omp_num_threads_when_threads_is_not_given(trained, synthetic_ner, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the change to 1 is seen even where 1 is the default
    try:
        assert main(["-q", "evaluate", "--model", str(trained), "--data", str(synthetic_ner["dev"])]) == 0
        assert torch.get_num_threads() == 1
        assert main(["-q", "evaluate", "--model", str(trained), "--data", str(synthetic_ner["dev"]),
                     "--threads", "2"]) == 0  # fmt: skip
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_predict_text_gives_entities_with_character_offsets(trained, tmp_path):
    texts = ["Alice Smith went to Paris today.", "", "the old dave met erin in tokyo"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["-q", "predict", "--model", str(trained), "--input", str(src), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == texts
    for row in rows:
        for ent in row["entities"]:
            assert row["text"][ent["start"] : ent["end"]] == ent["text"]
    assert [(e["text"], e["label"]) for e in rows[0]["entities"]] == [
        ("Alice Smith", "PER"),
        ("Paris", "LOC"),
    ]
    assert rows[1]["entities"] == []


def test_python_api_predicts_entities(trained):
    [entities] = bertkit.load(str(trained)).predict(["we met bob in lima"])
    assert [(e.text, e.label, e.start, e.end) for e in entities] == [
        ("bob", "PER", 7, 10),
        ("lima", "LOC", 14, 18),
    ]


def test_malformed_training_file_names_file_and_line(tiny_bert, synthetic_ner, tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("alice\tB-PER\nwent\tO\textra\n\n", encoding="utf-8")
    code = main(
        [
            "-q",
            "finetune",
            "ner",
            "--model",
            str(tiny_bert),
            "--train",
            str(bad),
            "--dev",
            str(synthetic_ner["dev"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "column" in err


def test_only_train_given_holds_out_a_seeded_dev_split(tiny_bert, synthetic_ner, tmp_path, caplog):
    out = tmp_path / "split"
    assert (
        main(
            [
                "finetune",
                "ner",
                "--model",
                str(tiny_bert),
                "--train",
                str(synthetic_ner["train"]),
                "--out",
                str(out),
                "--train.max_steps",
                "2",
                "--output.plot",
                "false",
            ]
        )
        == 0
    )
    assert "holding out 16 of 160 training records as dev (seed 42)" in caplog.text
    assert json.loads((out / "metrics.json").read_text())["split"] == "dev"
    assert not (out / "curves.png").exists()
