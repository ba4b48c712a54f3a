"""Freezing: frozen embeddings and bottom layers keep their pretrained weights through training."""

from __future__ import annotations

import torch
from conftest import ner_command
from safetensors.torch import load_file

from bertkit.cli.app import main


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
