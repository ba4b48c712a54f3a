"""`export_model_dir`: every task family exports and runs in onnxruntime as in PyTorch; an export that
disagrees with PyTorch is refused and leaves nothing in --out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from inference.saved_models import INPUTS, exported, save_untrained

import bertkit
from bertkit.errors import BertkitError
from bertkit.modeling import export as onnx_export
from bertkit.modeling.export import FP32_TOLERANCE
from bertkit.recipes.export import export_model_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def as_numbers(result) -> list[float]:
    """The probabilities or scores of a result, in a fixed order."""
    data = result.to_dict()
    found: list[float] = []

    def walk(value):
        if isinstance(value, float):
            found.append(value)
        elif isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return found


def without_numbers(result) -> str:
    def strip(value):
        if isinstance(value, float):
            return None
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(result.to_dict()), sort_keys=True)


@pytest.mark.parametrize("task_name", ["ner", "classify", "qa", "re"])
def test_every_task_family_exports_and_predicts_as_torch(task_name, tiny_bert, tmp_path_factory):
    model_dir, out = exported(task_name, tiny_bert, tmp_path_factory.getbasetemp())
    assert {"model.onnx", "model.int8.onnx", "config.json", "run.yaml", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not list(out.glob("*.safetensors"))  # the export runs without the PyTorch weights
    report = json.loads((out / "export.json").read_text())
    assert report["fp32"]["max_abs_diff"] <= FP32_TOLERANCE
    assert len({tuple(shape) for shape in report["checked_shapes"]}) == 3  # other batch sizes and lengths
    expected_outputs = ["start_logits", "end_logits"] if task_name == "qa" else ["logits"]
    assert report["outputs"] == expected_outputs
    if task_name == "re":
        assert report["inputs"][-2:] == ["head_start", "tail_start"]

    torch_results = bertkit.load(model_dir, precision="fp32").predict(INPUTS[task_name])
    onnx_results = bertkit.load(out, engine="onnx").predict(INPUTS[task_name])
    for ours, theirs in zip(onnx_results, torch_results):
        assert without_numbers(ours) == without_numbers(theirs)  # labels, tags, spans, texts
        np.testing.assert_allclose(as_numbers(ours), as_numbers(theirs), atol=1e-4)


@pytest.mark.parametrize("task_name", ["ner", "classify"])
def test_plain_onnxruntime_takes_the_tokenizers_output_as_it_is(task_name, tiny_bert, tmp_path_factory):
    # a user without bertkit: dict(tokenizer(texts, return_tensors="np")) straight into the session
    import onnxruntime as ort
    from transformers import AutoTokenizer

    model_dir, out = exported(task_name, tiny_bert, tmp_path_factory.getbasetemp())
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(out)
    encoded = dict(tokenizer(INPUTS[task_name], padding=True, return_tensors="np"))
    assert {i.name for i in session.get_inputs()} == set(encoded)
    (logits,) = session.run(None, encoded)
    assert logits.shape[0] == len(INPUTS[task_name])


def test_a_mismatch_with_torch_refuses_the_export_and_writes_nothing(tiny_bert, tmp_path, monkeypatch):
    model_dir = save_untrained("classify", tiny_bert, tmp_path / "model")
    real_run = onnx_export.run_session

    def off_by_a_little(session, batch):
        return {name: value + 3 * FP32_TOLERANCE for name, value in real_run(session, batch).items()}

    monkeypatch.setattr(onnx_export, "run_session", off_by_a_little)
    out = tmp_path / "exports" / "onnx"
    with pytest.raises(BertkitError, match=r"export refused: onnxruntime's logits differ .* 3\.00e-04"):
        export_model_dir(model_dir, out, quantize="int8")
    assert not out.exists()
    assert list((tmp_path / "exports").iterdir()) == []  # no scratch folder left beside it either


def test_an_out_folder_with_files_is_refused_before_any_work(tiny_bert, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BertkitError, match="not an empty directory; pass --overwrite"):
        export_model_dir(tmp_path / "no-model-needed", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
