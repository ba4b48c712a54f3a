"""The ONNX engine behind `Predictor`: the same results as the PyTorch model, its threads from the
threads setting, int8 on both engines, and clear errors where there is no export to run."""

from __future__ import annotations

import pytest
import torch
from inference.saved_models import INPUTS, exported, save_untrained

import bertkit
from bertkit.errors import BertkitError
from bertkit.inference.onnx_engine import EngineOutputs, OnnxModel, onnx_file
from bertkit.inference.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ner_export(tiny_bert, tmp_path_factory):
    return exported("ner", tiny_bert, tmp_path_factory.getbasetemp())


def test_outputs_read_as_attributes_and_keys():
    logits = torch.zeros(2, 3)
    out = EngineOutputs(logits=logits)
    assert out.logits is logits and out["logits"] is logits
    with pytest.raises(AttributeError):
        _ = out.start_logits


def test_onnx_predictions_match_torch_word_for_word(ner_export):
    model_dir, out = ner_export
    texts = INPUTS["ner"] * 3  # several batches of 4
    torch_tags = [r.tags for r in bertkit.load(model_dir, precision="fp32", batch_size=4).predict(texts)]
    onnx_predictor = Predictor.load(out, engine="onnx", batch_size=4)
    assert isinstance(onnx_predictor.model, OnnxModel)
    assert onnx_predictor.runtime.device.type == "cpu" and onnx_predictor.runtime.precision == "fp32"
    results = onnx_predictor.predict(texts)
    assert [r.tags for r in results] == torch_tags
    assert all(r.tags for r in results)


@pytest.mark.parametrize("threads", [1, 3])
def test_session_threads_follow_the_threads_setting(ner_export, threads):
    _, out = ner_export
    session = Predictor.load(out, engine="onnx", threads=threads).model.session
    assert session.get_session_options().intra_op_num_threads == threads


def word_probs(predictor: Predictor, texts: list[str]) -> list[list[float]]:
    """The probability of each word's tag (the API result keeps the tags only)."""
    return [p.probs for p in predictor.predict_records([predictor.task.to_record(t) for t in texts])]


def test_int8_runs_on_both_engines_and_agrees_with_fp32_mostly(ner_export):
    model_dir, out = ner_export
    texts = INPUTS["ner"]
    fp32 = word_probs(Predictor.load(model_dir, precision="fp32"), texts)
    onnx_int8 = Predictor.load(out, engine="onnx", precision="int8")
    assert onnx_int8.model.path.name == "model.int8.onnx"
    torch_int8 = Predictor.load(model_dir, precision="int8")
    assert any("quantized" in type(m).__module__ for m in torch_int8.model.modules())
    for predictor in (onnx_int8, torch_int8):
        probs = word_probs(predictor, texts)
        assert [len(p) for p in probs] == [len(p) for p in fp32] and all(fp32)
        worst = max(abs(a - b) for ours, theirs in zip(probs, fp32) for a, b in zip(ours, theirs))
        assert 0 < worst < 0.05  # close, and really another model


def test_no_export_in_the_folder_says_to_run_bertkit_export(tiny_bert, tmp_path):
    model_dir = save_untrained("classify", tiny_bert, tmp_path / "model")
    with pytest.raises(
        BertkitError, match="no model.onnx, so --engine onnx cannot run it; run `bertkit export"
    ):
        Predictor.load(model_dir, engine="onnx")
    with pytest.raises(BertkitError, match="no model.int8.onnx; run `bertkit export .* --quantize int8`"):
        onnx_file(model_dir, "int8")
    with pytest.raises(BertkitError, match="fp32 or int8, not bf16"):
        onnx_file(model_dir, "bf16")
    with pytest.raises(BertkitError, match="engine must be one of"):
        Predictor.load(model_dir, engine="tensorrt")


def test_torch_on_an_export_only_folder_says_to_pass_engine_onnx(ner_export):
    _, out = ner_export
    with pytest.raises(BertkitError, match="holds an ONNX export and no PyTorch weights; pass --engine onnx"):
        Predictor.load(out)
