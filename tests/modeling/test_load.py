"""Loading: a model that is not there or too short for the window is one clear line; frozen embeddings
and bottom layers keep their pretrained weights through training."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch
from conftest import ner_command
from safetensors.torch import load_file
from transformers import DebertaV2Config, RobertaConfig

from bertkit.cli.app import main
from bertkit.config import ModelConfig
from bertkit.errors import BertkitError
from bertkit.modeling.load import check_model, load_tokenizer, position_limit


def test_frozen_parts_keep_their_weights_and_the_rest_trains(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "frozen"
    args = ner_command(
        tiny_bert,
        synthetic_ner,
        out,
        "--train.max_steps",
        "6",
        "--lr",
        "1e-2",
        "--model.freeze_embeddings",
        "--model.freeze_layers",
        "1",
        "--output.plot",
        "false",
        test=False,
    )
    assert main(args) == 0
    before = load_file(str(tiny_bert / "model.safetensors"))
    after = {k.removeprefix("bert."): v for k, v in load_file(str(out / "model.safetensors")).items()}
    frozen = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in before if k.startswith("encoder.layer.1.")]
    assert frozen and trained
    for name in frozen:
        assert torch.equal(before[name], after[name]), name
    assert any(not torch.equal(before[name], after[name]) for name in trained)


# --- check_model: the model's config, and a max_length that fits its positions ------------------------


def test_check_model_returns_the_config_and_accepts_a_window_of_all_positions(tiny_bert):
    config = check_model(ModelConfig(name_or_path=str(tiny_bert), max_length=128))
    assert config.max_position_embeddings == 128 and config.model_type == "bert"


def test_check_model_refuses_a_window_longer_than_the_positions(tiny_bert):
    with pytest.raises(BertkitError) as info:
        check_model(ModelConfig(name_or_path=str(tiny_bert), max_length=129))
    assert str(info.value) == (
        f"--max-length 129 is more than {tiny_bert} takes (128 positions); pass --max-length 128 or less"
    )


def test_roberta_like_models_lose_the_padding_offset(tmp_path):
    # RoBERTa numbers positions from pad_token_id + 1: 514 embeddings hold 512 tokens
    RobertaConfig(max_position_embeddings=66, pad_token_id=1).save_pretrained(tmp_path)
    assert position_limit(check_model(ModelConfig(name_or_path=str(tmp_path), max_length=64))) == 64
    with pytest.raises(BertkitError, match=r"\(64 positions\)"):
        check_model(ModelConfig(name_or_path=str(tmp_path), max_length=65))


def test_relative_positions_only_have_no_limit():
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None
    assert position_limit(DebertaV2Config(max_position_embeddings=512)) == 512


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "no model: pass --model (a local directory or a hub id)"),
        ("{tmp}/no/such/dir", "--model {tmp}/no/such/dir: no such model directory"),
        ("{tmp}/file.txt", "--model {tmp}/file.txt is a file; it takes a model directory or a hub id"),
        ("{tmp}/empty", "--model {tmp}/empty: not a model directory (no config.json)"),
    ],
)
def test_a_model_that_is_not_there_is_one_clear_line(tmp_path, name, message):
    (tmp_path / "file.txt").write_text("not a model", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    cfg = ModelConfig(name_or_path=name and name.format(tmp=tmp_path))
    with pytest.raises(BertkitError) as info:
        check_model(cfg)
    assert str(info.value) == message.format(tmp=tmp_path)


def test_a_hub_id_that_cannot_be_loaded_offline_names_it_and_the_reason(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never touch the network
    with pytest.raises(BertkitError) as info:
        check_model(ModelConfig(name_or_path="bertkit-test/no-such-model"))
    message = str(info.value)
    assert message.startswith("cannot load model bertkit-test/no-such-model (no such local directory")
    assert "couldn't connect" in message and "\n" not in message
    with pytest.raises(BertkitError, match="cannot load the tokenizer of bertkit-test/no-such-model"):
        load_tokenizer(ModelConfig(name_or_path="bertkit-test/no-such-model"))


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_model_dropout_sets_every_dropout_of_the_encoder(tiny_bert, rate):
    from transformers import AutoModelForTokenClassification

    from bertkit.modeling.load import load_model

    model = load_model(
        AutoModelForTokenClassification, ModelConfig(name_or_path=str(tiny_bert), dropout=rate)
    )
    rates = {m.p for m in model.bert.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {rate}  # after the hidden layers and on the attention probabilities alike
    assert model.config.attention_probs_dropout_prob == model.config.hidden_dropout_prob == rate
