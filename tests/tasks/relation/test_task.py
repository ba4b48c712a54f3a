"""Relation classification end to end on a tiny model: markers in the encoded ids, a synthetic rule
learned, the saved model opened by plain transformers, predictions with probabilities."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
from conftest import CITIES, FILLER, NAMES, bertkit_command
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

import bertkit
from bertkit.cli.app import main
from bertkit.config import DataConfig, ModelConfig
from bertkit.data.readers.relations import insert_tags
from bertkit.records import Argument, RelationExample
from bertkit.tasks.relation.markers import PLAIN
from bertkit.tasks.relation.model import EncoderForRelationClassification
from bertkit.tasks.relation.task import RelationConfig, RelationTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LABELS = {("name", "city"): "lives_in(e1,e2)", ("city", "name"): "lives_in(e2,e1)", ("name", "name"): "knows"}


def relation_row(rng: random.Random) -> dict:
    """Filler words with 3 names or cities; the marked two decide the label, the third distracts."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(2, 5))]
    for _ in range(3):
        words.insert(rng.randrange(len(words) + 1), rng.choice(NAMES + CITIES))
    places = [i for i, w in enumerate(words) if w in NAMES or w in CITIES]
    head, tail = rng.sample(places, 2)
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]

    def span(i: int) -> dict:
        return {"start": starts[i], "end": starts[i] + len(words[i])}

    kinds = tuple("name" if words[i] in NAMES else "city" for i in (head, tail))
    label = LABELS.get(kinds, "Other")
    return {"text": " ".join(words), "head": span(head), "tail": span(tail), "label": label}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_semeval(path: Path, rows: list[dict]) -> Path:
    blocks = []
    for n, r in enumerate(rows, 1):
        head, tail = (Argument(r[k]["start"], r[k]["end"]) for k in ("head", "tail"))
        blocks.append(f'{n}\t"{insert_tags(r["text"], head, tail)}"\n{r["label"]}\nComment:\n\n')
    path.write_text("".join(blocks), encoding="utf-8")
    return path


def synthetic_splits(folder: Path, write=write_jsonl, suffix: str = ".jsonl") -> dict[str, Path]:
    rng = random.Random(5)
    sizes = {"train": 240, "dev": 60, "test": 60}
    return {
        s: write(folder / f"{s}{suffix}", [relation_row(rng) for _ in range(n)]) for s, n in sizes.items()
    }


FAST = ["--lr", "5e-3", "--batch-size", "16", "--max-length", "32", "--seed", "1"]


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory) -> tuple[Path, dict[str, Path], dict]:
    """One entity-start run on the synthetic JSON lines, shared by the tests that read its output."""
    folder = tmp_path_factory.mktemp("re_run")
    data = synthetic_splits(folder)
    out = folder / "run"
    assert main(bertkit_command("finetune", "re", tiny_bert, data, out, *FAST, "--epochs", "12")) == 0
    return out, data, json.loads((out / "metrics.json").read_text())


def test_a_tiny_model_learns_which_marked_entities_decide_the_relation(trained):
    out, _, metrics = trained
    before, after, majority = metrics["before"], metrics["after"], metrics["majority"]
    # 4 labels about evenly drawn; seeds 1 and 2 give 0.95-0.97 accuracy (lr 3e-3 needs 20 epochs)
    assert after["accuracy"] >= 0.85 and majority["accuracy"] <= 0.4
    assert after["macro_f1"] >= 0.85 and before["macro_f1"] < 0.5
    assert set(after["per_class"]) == {"lives_in", "knows"}  # Other is left out of the official score
    losses = [e["loss"] for e in map(json.loads, (out / "train_log.jsonl").open()) if e["event"] == "step"]
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3


def test_the_saved_model_reloads_with_plain_transformers(trained, tiny_bert):
    out, _, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(out)
    original = AutoTokenizer.from_pretrained(tiny_bert)
    ids = tokenizer.convert_tokens_to_ids(list(PLAIN))
    assert len(tokenizer) == len(original) + 4 and min(ids) >= len(original)
    assert tokenizer.tokenize("alice [E1] paris [/E1]") == ["alice", "[E1]", "paris", "[/E1]"]
    encoder, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"]
    assert encoder.get_input_embeddings().num_embeddings == len(tokenizer)
    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(
        encoder.get_input_embeddings().weight[ids], saved["bert.embeddings.word_embeddings.weight"][ids]
    )
    # the fine-tuned encoder, not a fresh one: the same hidden states as inside the bertkit model
    model = EncoderForRelationClassification.from_pretrained(out).eval()
    batch = tokenizer(["alice [E1] paris [/E1] met [E2] bob [/E2]"], return_tensors="pt")
    with torch.no_grad():
        ours = model.encoder_model(**batch).last_hidden_state
        theirs = encoder.eval()(**batch).last_hidden_state
    assert torch.allclose(ours, theirs)


def test_predict_gives_the_relation_and_its_probability(trained, tmp_path):
    out, data, _ = trained
    rows = [json.loads(line) for line in data["test"].read_text().splitlines()]
    unlabelled = write_jsonl(
        tmp_path / "in.jsonl", [{k: v for k, v in r.items() if k != "label"} for r in rows]
    )
    target = tmp_path / "pred.jsonl"
    assert main(["-q", "predict", "--model", str(out), "--input", str(unlabelled), "--out", str(target)]) == 0
    predicted = [json.loads(line) for line in target.read_text().splitlines()]
    assert [p["line"] for p in predicted] == list(range(1, len(rows) + 1))
    for p in predicted:
        assert p["score"] == max(p["probs"].values()) and p["probs"][p["label"]] == p["score"]
        assert sum(p["probs"].values()) == pytest.approx(1, abs=1e-4)
    right = sum(p["label"] == r["label"] for p, r in zip(predicted, rows))
    assert right >= 0.85 * len(rows)
    # the Python API: the JSON lines schema, or a text with SemEval's tags, predicts what the file did
    first, second = rows[0], rows[1]
    head, tail = (Argument(second[k]["start"], second[k]["end"]) for k in ("head", "tail"))
    api = {k: v for k, v in first.items() if k != "label"}
    [by_spans, by_tags] = bertkit.load(out).predict([api, insert_tags(second["text"], head, tail)])
    assert [by_spans.label, by_tags.label] == [predicted[0]["label"], predicted[1]["label"]]
    start, end = first["head"]["start"], first["head"]["end"]
    assert by_spans.to_dict()["head"] == {"start": start, "end": end, "text": first["text"][start:end]}


def test_evaluate_scores_as_the_run_did(trained, tmp_path):
    out, data, metrics = trained
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(out),
                "--data",
                str(data["test"]),
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["macro_f1"] == pytest.approx(metrics["after"]["macro_f1"])


def test_entities_farther_apart_than_a_window_are_counted_and_flagged(trained, caplog):
    out, _, _ = trained
    predictor = bertkit.load(out)
    far = "bob " + "the old home " * 20 + "in oslo"
    record = RelationExample(far, Argument(0, 3), Argument(len(far) - 4, len(far)))
    near = RelationExample("bob in oslo", Argument(0, 3), Argument(7, 11))
    [long, short] = predictor.predict([record, near])
    assert long.shortened and not short.shortened
    features = predictor.task.encode([record, near, record])
    with caplog.at_level(logging.WARNING):
        predictor.task.describe_encoding([record, near, record], features, "far")
    assert "far: 2 relation(s) with the entities farther apart than a window of 32 sub-words" in caplog.text
    [window] = predictor.task.encode([record])
    tokens = predictor.task.tokenizer.convert_ids_to_tokens(window.input_ids)
    assert len(tokens) <= 32 and tokens[window.head_start] == "[E1]" and tokens[window.tail_start] == "[E2]"
    assert tokens[window.head_start + 1] == "bob" and tokens[window.tail_start + 1] == "oslo"


def relation_task(tiny_bert: Path, **cfg) -> RelationTask:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = RelationTask(
        RelationConfig(**cfg),
        ModelConfig(name_or_path=str(tiny_bert), max_length=64),
        DataConfig(),
        tokenizer,
    )
    task.prepare_tokenizer(tokenizer)
    return task


def test_markers_wrap_exactly_the_entity_subwords(tiny_bert):
    task = relation_task(tiny_bert)
    tok = task.tokenizer
    text = "carol smith met dave in lima"
    records = [
        RelationExample(text, Argument(0, 11), Argument(24, 28)),  # head first
        RelationExample(text, Argument(24, 28), Argument(16, 20)),  # head after the tail
    ]
    for record, feature in zip(records, task.encode(records)):
        tokens = tok.convert_ids_to_tokens(feature.input_ids)
        assert tokens[feature.head_start] == "[E1]" and tokens[feature.tail_start] == "[E2]"
        for start, arg, close in (
            (feature.head_start, record.head, "[/E1]"),
            (feature.tail_start, record.tail, "[/E2]"),
        ):
            end = tokens.index(close)
            assert tokens[start + 1 : end] == tok.tokenize(text[arg.start : arg.end])
        # the markers taken out, the text is tokenized as it would be without them
        plain = [t for t in tokens if t not in PLAIN]
        assert plain == tok.convert_ids_to_tokens(tok(text)["input_ids"])
    reversed_tokens = tok.convert_ids_to_tokens(task.encode(records[1:])[0].input_ids)
    assert reversed_tokens.index("[E2]") < reversed_tokens.index("[E1]")  # markers follow the text


def test_typed_markers_for_known_types_and_plain_ones_otherwise(tiny_bert):
    task = relation_task(tiny_bert, markers="typed", entity_types=["PER"])
    record = RelationExample("alice in oslo", Argument(0, 5, "PER"), Argument(9, 13, "LOC"))
    [feature] = task.encode([record])
    tokens = task.tokenizer.convert_ids_to_tokens(feature.input_ids)
    assert tokens == ["[CLS]", "[E1:PER]", "alice", "[/E1:PER]", "in", "[E2]", "oslo", "[/E2]", "[SEP]"]
    assert tokens[feature.head_start] == "[E1:PER]"


def test_cls_baseline_reads_the_same_marked_text_without_new_tokens(tiny_bert, tmp_path):
    data = synthetic_splits(tmp_path, write_semeval, ".txt")  # SemEval's own format, end to end
    out = tmp_path / "cls"
    args = bertkit_command(
        "finetune", "re", tiny_bert, data, out, *FAST, "--representation", "cls", "--steps", "6"
    )
    assert main(args) == 0
    assert len(AutoTokenizer.from_pretrained(out)) == len(AutoTokenizer.from_pretrained(tiny_bert))
    assert json.loads((out / "config.json").read_text())["relation_representation"] == "cls"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"macro_f1", "accuracy", "per_class"} <= set(metrics["after"])
    task = bertkit.load(out).task
    [feature] = task.encode([RelationExample("bob in oslo", Argument(0, 3), Argument(7, 11))])
    opening = task.tokenizer("[E1]", add_special_tokens=False)["input_ids"]
    assert len(opening) > 1 and feature.input_ids[1 : 1 + len(opening)] == opening  # plain text pieces
    assert feature.input_ids[feature.head_start : feature.head_start + len(opening)] == opening
    # the answers in SemEval's format, for the official scorer
    target = tmp_path / "answers.txt"
    assert (
        main(["-q", "predict", "--model", str(out), "--input", str(data["test"]), "--out", str(target)]) == 0
    )
    answers = [line.split("\t") for line in target.read_text().splitlines()]
    assert [a[0] for a in answers] == [str(n) for n in range(1, 61)] and all(len(a) == 2 for a in answers)


def test_a_dev_label_unseen_in_train_is_an_error_naming_file_and_line(tiny_bert, tmp_path, capsys):
    rng = random.Random(1)
    rows = [relation_row(rng) for _ in range(20)]
    train = write_jsonl(tmp_path / "train.jsonl", [r for r in rows if r["label"] != "knows"])
    dev = write_jsonl(
        tmp_path / "dev.jsonl",
        [next(r for r in rows if r["label"] != "knows"), next(r for r in rows if r["label"] == "knows")],
    )
    args = bertkit_command("finetune", "re", tiny_bert, {"train": train, "dev": dev}, tmp_path / "run", *FAST)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{dev}:2:" in err and "'knows'" in err


def test_the_label_set_holds_both_directions_of_every_directed_relation(tiny_bert):
    task = relation_task(tiny_bert)
    text = "bob in oslo"
    seen = ["Entity-Destination(e1,e2)", "Other", "knows"]
    task.setup([RelationExample(text, Argument(0, 3), Argument(7, 11), label) for label in seen])
    assert task.labels == ["Entity-Destination(e1,e2)", "Entity-Destination(e2,e1)", "Other", "knows"]
