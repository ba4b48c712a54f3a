"""`bertkit export` and `predict --engine onnx` through the CLI: the same prediction file as the torch
engine, and one clear line for a folder that was not exported."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from inference.saved_models import save_untrained

from bertkit.cli.app import main
from bertkit.inference.predictor import Predictor

ONNX_INT8 = ["--engine", "onnx", "--precision", "int8"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def predict(model, source, out, *flags) -> int:
    return main(["-q", "predict", "--model", str(model), "--input", str(source), "--out", str(out), *flags])


def test_export_then_predict_with_onnx_writes_what_torch_writes(tiny_bert, tmp_path):
    model_dir = save_untrained("classify", tiny_bert, tmp_path / "model", seed=3)
    texts = tmp_path / "texts.txt"
    texts.write_text("alice went to paris\nbob saw oslo\nthe big old home\ncarol met dave in lima\n" * 2)
    out = tmp_path / "exported"
    assert main(["-q", "export", "--model", str(model_dir), "--out", str(out), "--samples", str(texts)]) == 0
    assert json.loads((out / "export.json").read_text())["checked_shapes"][0][0] == 4  # from --samples
    assert not (out / "model.int8.onnx").exists()  # only with --quantize int8

    assert predict(model_dir, texts, tmp_path / "torch.jsonl", "--precision", "fp32") == 0
    assert predict(out, texts, tmp_path / "onnx.jsonl", "--engine", "onnx") == 0
    theirs = [json.loads(line) for line in (tmp_path / "torch.jsonl").read_text().splitlines()]
    ours = [json.loads(line) for line in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    assert len(ours) == len(theirs) == 8
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert a["probs"].keys() == b["probs"].keys()
        assert all(abs(a["probs"][k] - b["probs"][k]) <= 1e-4 for k in a["probs"])


def test_engine_onnx_on_a_folder_without_export_is_one_line(tiny_bert, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("alice\n")
    assert predict(tiny_bert, texts, tmp_path / "o.jsonl", "--engine", "onnx") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bertkit: error: {tiny_bert}: no model.onnx") and "bertkit export" in err
    assert err.count("\n") == 1
    assert predict(tiny_bert, texts, tmp_path / "o.jsonl", "--engine", "onnx", "--precision", "bf16") == 2
    assert "fp32 or int8, not bf16" in capsys.readouterr().err


def test_export_of_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["-q", "export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"bertkit: error: --model {tmp_path / 'nope'}: not a directory; " + (
        "it takes a fine-tuned model directory\n"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("flags", "engine", "precision"), [([], "torch", "auto"), (ONNX_INT8, "onnx", "int8")]
)
def test_engine_and_precision_reach_the_predictor(tmp_path, monkeypatch, flags, engine, precision):
    loads = []

    class Loaded:
        task = SimpleNamespace(data_cfg=SimpleNamespace(format="auto", on_bad_line="error"))

        def predict_file(self, path, out):
            return 0

        def evaluate(self, path):
            return {"accuracy": 1.0}

    def load(model_dir, **kwargs):
        loads.append(kwargs)
        return Loaded()

    monkeypatch.setattr(Predictor, "load", load)
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "model.int8.onnx").write_bytes(b"")  # check_args looks for the file; the fake loads nothing
    texts = tmp_path / "texts.txt"
    texts.write_text("alice\n")
    assert predict(folder, texts, tmp_path / "o.jsonl", *flags) == 0
    assert main(["-q", "evaluate", "--model", str(folder), "--data", str(texts), *flags]) == 0
    assert [(k["engine"], k["precision"]) for k in loads] == [(engine, precision)] * 2
