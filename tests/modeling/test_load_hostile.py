"""Model directories from elsewhere: a pickle that would run code is refused, remote code never runs
unless asked for, and a config.json whose sizes do not fit its weights is one clear error."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import ner_command
from safetensors.torch import load_file
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForMaskedLM,
)

import bertkit
from bertkit.cli.app import main
from bertkit.config import ModelConfig
from bertkit.errors import BertkitError
from bertkit.modeling.load import check_model, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SRC = Path(bertkit.__file__).parent


class Payload:
    """What a hostile pytorch_model.bin holds: unpickling it calls exec, which writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def copy_of(tiny_bert: Path, folder: Path) -> Path:
    shutil.copytree(tiny_bert, folder)
    return folder


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def bin_model(tiny_bert: Path, folder: Path, extra: dict | None = None) -> Path:
    """The tiny BERT with its weights as pytorch_model.bin (plus ``extra`` objects) instead of safetensors."""
    copy_of(tiny_bert, folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({**weights, **(extra or {})}, folder / "pytorch_model.bin")
    return folder


# --- pickled weights ----------------------------------------------------------------------------------


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tiny_bert, tmp_path):
    marker = tmp_path / "ran"
    hostile = bin_model(tiny_bert, tmp_path / "hostile", {"payload": Payload(marker)})
    with pytest.raises(BertkitError) as info:
        load_model(AutoModelForTokenClassification, ModelConfig(name_or_path=str(hostile)), num_labels=3)
    assert not marker.exists()
    # torch names the global it blocked: exec (builtins.exec in some versions)
    assert re.fullmatch(
        rf"{re.escape(str(hostile))}: refused its PyTorch weights file: it holds pickled objects other "
        r"than tensors \((builtins\.)?exec\), which would run code when loaded; bertkit reads \.bin "
        r"weights with weights_only=True only\. Use a model\.safetensors from a source you trust",
        str(info.value),
    )
    # the payload is real: the file calls exec when unpickled (read from its opcodes, never run here)
    assert "builtins.exec" in torch.serialization.get_unsafe_globals_in_checkpoint(
        hostile / "pytorch_model.bin"
    )
    assert not marker.exists()


def test_finetune_on_a_hostile_model_stops_with_one_line(tiny_bert, synthetic_ner, tmp_path, capsys):
    marker = tmp_path / "ran"
    hostile = bin_model(tiny_bert, tmp_path / "hostile", {"payload": Payload(marker)})
    assert main(ner_command(hostile, synthetic_ner, tmp_path / "out", "--train.max_steps", "1")) == 2
    err = capsys.readouterr().err
    assert f"bertkit: error: {hostile}: refused its PyTorch weights file" in err
    assert "Traceback" not in err and not marker.exists()


def test_a_bin_file_of_tensors_alone_loads(tiny_bert, tmp_path):
    plain = bin_model(tiny_bert, tmp_path / "plain")
    model = load_model(AutoModel, ModelConfig(name_or_path=str(plain)))
    expected = load_file(str(tiny_bert / "model.safetensors"))
    assert torch.equal(model.embeddings.word_embeddings.weight, expected["embeddings.word_embeddings.weight"])


# --- remote code --------------------------------------------------------------------------------------


def test_bertkit_passes_trust_remote_code_only_from_the_users_config():
    """Every ``trust_remote_code=`` in bertkit is the user's ``ModelConfig.trust_remote_code``, whose
    default is False; none is a literal True or anything computed."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for value in re.findall(r"trust_remote_code\s*=\s*([^,)\n]+)", path.read_text(encoding="utf-8")):
            found.append((path.relative_to(SRC).as_posix(), value.strip()))
    assert found, "the search finds the calls"
    for where, value in found:
        assert value.endswith(".trust_remote_code") or value == "False", (where, value)
    assert ModelConfig().trust_remote_code is False


def remote_code_model(tiny_bert: Path, folder: Path, marker: Path, model_type: str) -> Path:
    """A model folder whose config.json maps AutoConfig to a Python file that writes ``marker``."""
    copy_of(tiny_bert, folder)
    (folder / "configuration_hostile.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig\n\n\n"
        "class HostileConfig(BertConfig):\n    model_type = 'hostile'\n",
        encoding="utf-8",
    )
    return edit_config(
        folder, model_type=model_type, auto_map={"AutoConfig": "configuration_hostile.HostileConfig"}
    )


def test_a_config_that_needs_remote_code_is_refused_without_running_it(tiny_bert, tmp_path):
    marker = tmp_path / "ran"
    folder = remote_code_model(tiny_bert, tmp_path / "remote", marker, model_type="hostile")
    with pytest.raises(BertkitError, match=rf"^cannot load model {folder}: .*contains custom code"):
        check_model(ModelConfig(name_or_path=str(folder)))
    assert not marker.exists()


def test_a_known_model_type_with_an_auto_map_loads_without_its_code(tiny_bert, tmp_path):
    marker = tmp_path / "ran"
    folder = remote_code_model(tiny_bert, tmp_path / "remote", marker, model_type="bert")
    model = load_model(AutoModelForTokenClassification, ModelConfig(name_or_path=str(folder)), num_labels=3)
    assert type(model).__name__ == "BertForTokenClassification" and not marker.exists()


def test_a_saved_model_cannot_turn_remote_code_on_for_prediction(tiny_bert, tmp_path):
    from inference.saved_models import save_untrained

    from bertkit.inference.predictor import Predictor

    marker = tmp_path / "ran"
    folder = save_untrained("ner", tiny_bert, tmp_path / "saved")
    edit_config(folder, auto_map={"AutoConfig": "configuration_hostile.HostileConfig"})
    (folder / "configuration_hostile.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    run_yaml = folder / "run.yaml"
    run_yaml.write_text(run_yaml.read_text().replace("trust_remote_code: false", "trust_remote_code: true"))
    assert "trust_remote_code: true" in run_yaml.read_text()
    predictor = Predictor.load(folder, precision="fp32", threads=1)
    assert len(predictor.predict(["alice went to paris"])) == 1 and not marker.exists()


# --- config.json against the weights ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"hidden_size": 64, "intermediate_size": 128},
            r"config.json does not match the weights: bert.embeddings.LayerNorm.bias is \[32\] in the "
            r"weights, \[64\] by config.json; .* \(and \d+ more\)$",
        ),
        (
            {"vocab_size": 500},
            r"config.json does not match the weights: bert.embeddings.word_embeddings.weight is "
            r"\[\d+, 32\] in the weights, \[500, 32\] by config.json$",
        ),
        (
            {"num_hidden_layers": 3},
            r"config.json builds 16 weights of the pretrained model that the weights file does not hold "
            r"\(first: bert.encoder.layer.2.",
        ),
    ],
    ids=["hidden_size", "vocab_size", "layers"],
)
def test_a_config_whose_sizes_do_not_fit_its_weights_is_one_clear_error(
    tiny_bert, tmp_path, changes, expected
):
    folder = edit_config(copy_of(tiny_bert, tmp_path / "model"), **changes)
    with pytest.raises(BertkitError, match=rf"^{folder}: {expected}"):
        load_model(AutoModelForTokenClassification, ModelConfig(name_or_path=str(folder)), num_labels=3)


def test_finetune_on_a_config_that_does_not_fit_stops_with_one_line(
    tiny_bert, synthetic_ner, tmp_path, capsys
):
    folder = edit_config(copy_of(tiny_bert, tmp_path / "model"), vocab_size=500)
    assert main(ner_command(folder, synthetic_ner, tmp_path / "out", "--train.max_steps", "1")) == 2
    err = capsys.readouterr().err
    assert (
        f"bertkit: error: {folder}: config.json does not match the weights" in err and "Traceback" not in err
    )


def test_fewer_layers_than_the_weights_hold_loads_them_and_says_so(tiny_bert, tmp_path, caplog):
    # keeping the bottom layers of a deeper checkpoint is a deliberate way to make a smaller model
    folder = edit_config(copy_of(tiny_bert, tmp_path / "model"), num_hidden_layers=1)
    model = load_model(AutoModel, ModelConfig(name_or_path=str(folder)))
    assert len(model.encoder.layer) == 1
    assert "16 weights have no place in the model config.json builds" in caplog.text


def test_a_new_head_and_a_missing_pooler_are_what_fine_tuning_expects(tmp_path):
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(tmp_path / "mlm")  # a pretraining result: no pooler, no head
    model = load_model(
        AutoModelForSequenceClassification, ModelConfig(name_or_path=str(tmp_path / "mlm")), num_labels=2
    )
    assert model.classifier.out_features == 2
