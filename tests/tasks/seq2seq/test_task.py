"""Sequence to sequence end to end on tiny models: a control code followed, 32 pairs overfitted, the saved
model generating the same with plain transformers, a decoder with its own vocabulary, shared weights."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
from conftest import CITIES, NAMES, bertkit_command, make_tiny_bert
from transformers import AutoTokenizer, EncoderDecoderModel

import bertkit
from bertkit.cli.app import main
from bertkit.config import DataConfig, ModelConfig
from bertkit.data.windows import window_starts
from bertkit.errors import BertkitError
from bertkit.records import Seq2SeqExample
from bertkit.tasks.seq2seq.task import DECODER_TOKENIZER, Seq2SeqConfig, Seq2SeqTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = NAMES + CITIES
TRAIN = ("--epochs", "40", "--lr", "3e-3", "--batch-size", "8", "--train.warmup_ratio", "0.05")


def pair(rng: random.Random) -> dict:
    """A few names and cities; the target is them reversed."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
    return {"source": " ".join(words), "target": " ".join(words[::-1])}


def controlled_pair(rng: random.Random) -> dict:
    """A few names and cities; the control code says whether the target is the first or the last."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
    control = rng.choice(["first", "last"])
    return {"source": " ".join(words), "target": words[0 if control == "first" else -1], "control": control}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_model(tiny_bert, tmp_path_factory) -> Path:
    """A wider tiny BERT: 64 hidden units learn the reversal in a few hundred steps."""
    return make_tiny_bert(tmp_path_factory.mktemp("s2s_bert"), hidden=64)


@pytest.fixture(scope="module")
def controlled(small_model, tmp_path_factory) -> dict[str, Path]:
    """A model trained on pairs whose control code asks for the first or the last word."""
    folder = tmp_path_factory.mktemp("controlled")
    rng = random.Random(3)
    rows = [controlled_pair(rng) for _ in range(440)]
    data = {
        "train": write_jsonl(folder / "train.jsonl", rows[:400]),
        "dev": write_jsonl(folder / "dev.jsonl", rows[400:]),
    }
    out = folder / "model"
    command = bertkit_command(
        "finetune", "seq2seq", small_model, data, out, *TRAIN, "--control-field", "control"
    )
    assert main([*command, "--epochs", "16", "--batch-size", "16", "--num-beams", "1"]) == 0
    return {"out": out, **data}


def test_a_tiny_model_overfits_32_pairs(small_model, tmp_path):
    rng = random.Random(0)
    rows = [pair(rng) for _ in range(32)]
    data = {
        "train": write_jsonl(tmp_path / "train.jsonl", rows),
        "dev": write_jsonl(tmp_path / "dev.jsonl", rows),
    }
    out = tmp_path / "model"
    assert main(bertkit_command("finetune", "seq2seq", small_model, data, out, *TRAIN, "--epochs", "60")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["before"]["rougeLsum"] < 50
    assert metrics["after"]["rougeLsum"] >= 95
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r.get("event") == "step"]
    assert losses[-1] < losses[0] / 10


def test_the_control_code_steers_the_output(controlled):
    predictor = bertkit.load(controlled["out"], task_options={"num_beams": 1})
    rng = random.Random(11)
    sources = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) for _ in range(30)]
    for control, index in (("first", 0), ("last", -1)):
        out = predictor.predict([{"source": s, "control": control} for s in sources])
        right = sum(r.output == s.split()[index] for r, s in zip(out, sources))
        assert right >= 24, (control, right)  # copying the other end would score about 4
    with pytest.raises(BertkitError, match="unknown control code 'upper'"):
        predictor.predict([{"source": sources[0], "control": "upper"}])


def test_plain_transformers_generates_what_bertkit_predicts(controlled, tmp_path):
    source = "[CTRL:last] alice paris bob"
    model = EncoderDecoderModel.from_pretrained(controlled["out"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(controlled["out"])
    with torch.no_grad():
        ids = model.generate(**tokenizer([source], return_tensors="pt"), num_beams=2)
    plain = tokenizer.decode(ids[0], skip_special_tokens=True)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"source": "alice paris bob", "control": "last"}] * 3)
    out = tmp_path / "pred.jsonl"
    assert (
        main(
            [
                "-q",
                "predict",
                "--model",
                str(controlled["out"]),
                "--input",
                str(inputs),
                "--out",
                str(out),
                "--num-beams",
                "2",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert {r["output"] for r in rows} == {plain} and plain == "bob"


def test_evaluate_scores_a_labelled_file_with_its_references(controlled, tmp_path):
    out = tmp_path / "metrics.json"
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(controlled["out"]),
                "--data",
                str(controlled["dev"]),
                "--out",
                str(out),
                "--num-beams",
                "1",
            ]
        )
        == 0
    )
    metrics = json.loads(out.read_text())
    assert metrics["count"] == 40 and metrics["rouge1"] > 85 and "tok:13a" in metrics["bleu_signature"]


def test_labels_are_masked_at_padding_and_the_decoder_starts_at_cls(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = Seq2SeqTask(Seq2SeqConfig(), ModelConfig(name_or_path=str(tiny_bert)), DataConfig(), tokenizer)
    records = [Seq2SeqExample("alice", ["bob went home"]), Seq2SeqExample("paris", ["lima"])]
    task.setup(records)
    batch = task.collate(task.encode(records))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    target = tokenizer("bob went home", add_special_tokens=False)["input_ids"]
    assert batch["labels"][0].tolist() == [*target, sep]
    assert batch["decoder_input_ids"][0].tolist() == [cls, *target]
    lima = tokenizer.convert_tokens_to_ids("lima")
    assert batch["labels"][1].tolist() == [lima, sep, -100, -100]
    assert batch["decoder_attention_mask"][1].tolist() == [1, 1, 0, 0]
    assert task.cfg.max_target_length == len(target) + 1


def test_a_target_longer_than_the_maximum_is_counted(tiny_bert, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    cfg = Seq2SeqConfig(max_target_length=3)
    task = Seq2SeqTask(cfg, ModelConfig(name_or_path=str(tiny_bert)), DataConfig(), tokenizer)
    records = [Seq2SeqExample("alice", ["bob went home today"]), Seq2SeqExample("paris", ["lima"])]
    features = task.encode(records)
    assert [f.cut for f in features] == [2, 0]
    task.describe_encoding(records, features, "train")
    assert (
        "1 target(s) longer than max_target_length 3: 2 sub-words beyond it are not trained on" in caplog.text
    )
    task.describe_encoding(records, features, "dev")
    assert "2 sub-words beyond it are left out of this split's loss" in caplog.text


def test_the_log_counts_the_windows_of_long_sources(tiny_bert, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model_cfg = ModelConfig(name_or_path=str(tiny_bert), max_length=8, stride=2)
    task = Seq2SeqTask(Seq2SeqConfig(), model_cfg, DataConfig(), tokenizer)
    records = [Seq2SeqExample(" ".join(["alice"] * 20), ["bob"]), Seq2SeqExample("paris", ["lima"])]
    features = task.encode(records)
    with caplog.at_level(logging.INFO):
        task.describe_encoding(records, features, "train")
    budget, stride = task.budget, task.stride
    expected = len(window_starts(20, budget, stride)) + 1
    assert expected > 2  # the long source takes several windows
    assert f"train: 2 records, {expected} windows" in caplog.text


def test_a_decoder_with_its_own_vocabulary_is_saved_and_used(small_model, tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"甲乙丙丁戊己庚辛"]
    decoder = make_tiny_bert(tmp_path / "zh", hidden=64, vocab=vocab)
    rng = random.Random(5)
    mapping = dict(zip(WORDS, "甲乙丙丁戊己庚辛甲乙丙丁"))
    rows = []
    for _ in range(48):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        rows.append({"source": " ".join(words), "target": "".join(mapping[w] for w in words)})
    data = {
        "train": write_jsonl(tmp_path / "train.jsonl", rows),
        "dev": write_jsonl(tmp_path / "dev.jsonl", rows[:16]),
    }
    out = tmp_path / "model"
    command = bertkit_command(
        "finetune", "seq2seq", small_model, data, out, *TRAIN, "--decoder", str(decoder)
    )
    assert main([*command, "--kind", "translate", "--num-beams", "1"]) == 0
    assert (out / DECODER_TOKENIZER / "tokenizer.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["after"]["language"] == "zh" and "tok:zh" in metrics["after"]["bleu_signature"]
    assert metrics["after"]["loss"] < metrics["before"]["loss"] / 2
    result = bertkit.load(out, task_options={"num_beams": 1}).predict(["alice paris"])[0]
    assert result.output and set(result.output) <= set(vocab[5:])  # no spaces between the characters


def test_shared_weights_train_one_set_of_layers(small_model, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    shared = Seq2SeqTask(
        Seq2SeqConfig(share_weights=True), ModelConfig(name_or_path=str(small_model)), DataConfig(), tokenizer
    ).build_model()
    separate = Seq2SeqTask(
        Seq2SeqConfig(), ModelConfig(name_or_path=str(small_model)), DataConfig(), tokenizer
    ).build_model()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731 (parameters() dedupes shared)
    assert count(shared) < count(separate) * 0.75
    encoder_query = shared.encoder.encoder.layer[0].attention.self.query.weight
    assert shared.decoder.bert.encoder.layer[0].attention.self.query.weight is encoder_query
    assert shared.decoder.bert.encoder.layer[0].crossattention.self.query.weight is not encoder_query
    rng = random.Random(1)
    rows = [pair(rng) for _ in range(32)]
    data = {
        "train": write_jsonl(tmp_path / "train.jsonl", rows),
        "dev": write_jsonl(tmp_path / "dev.jsonl", rows),
    }
    out = tmp_path / "model"
    command = bertkit_command("finetune", "seq2seq", small_model, data, out, *TRAIN, "--share-weights")
    assert main([*command, "--num-beams", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["after"]["loss"] < metrics["before"]["loss"] / 3
    # the saved model opens with plain transformers (each side gets its copy) and generates the same
    predictor = bertkit.load(out, task_options={"num_beams": 1}, precision="fp32")
    plain = EncoderDecoderModel.from_pretrained(out).eval()
    ids = tokenizer(["alice paris bob"], return_tensors="pt")
    with torch.no_grad():
        text = tokenizer.decode(plain.generate(**ids, num_beams=1)[0], skip_special_tokens=True)
    assert predictor.predict(["alice paris bob"])[0].output == text


def test_the_server_generates_with_the_saved_model(controlled):
    from fastapi.testclient import TestClient

    from bertkit.inference.predictor import Predictor
    from bertkit.inference.serving import create_app

    predictor = Predictor.load(controlled["out"], task_options={"num_beams": 1}, precision="fp32")
    inputs = [{"source": "alice paris bob", "control": "last"}, {"source": "erin lima", "control": "first"}]
    with TestClient(create_app(predictor)) as client:
        response = client.post("/predict", json={"inputs": inputs})
        info = client.get("/info").json()
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [r.to_dict() for r in predictor.predict(inputs)]
    assert info["task"] == "seq2seq"


def test_bf16_prediction_holds_bf16_weights_and_export_is_refused(controlled, tmp_path):
    from bertkit.inference.predictor import Predictor
    from bertkit.recipes.export import export_model_dir

    predictor = Predictor.load(controlled["out"], precision="bf16")
    assert next(predictor.model.parameters()).dtype == torch.bfloat16
    assert predictor.predict([{"source": "alice paris bob", "control": "last"}])[0].output
    with pytest.raises(BertkitError, match="generates step by step"):
        export_model_dir(controlled["out"], tmp_path / "onnx")


def test_sampling_is_seeded(controlled):
    def sample(seed: int) -> list[str]:
        options = {"do_sample": True, "num_beams": 1, "temperature": 3.0, "top_k": 0, "generation_seed": seed}
        predictor = bertkit.load(controlled["out"], task_options=options, precision="fp32")
        return [
            r.output for r in predictor.predict([{"source": "alice paris bob lima", "control": "last"}] * 8)
        ]

    first = sample(1)
    assert sample(1) == first
    assert sample(2) != first
    assert len(set(first)) > 1  # a hot temperature spreads the eight samples
