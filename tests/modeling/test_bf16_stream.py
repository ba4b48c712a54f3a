"""The bf16 residual stream: under autocast the layers pass bf16 between them, the loss stays that of
the fp32 stream to bf16 precision, and nothing changes without autocast."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from bertkit.modeling.bf16_stream import use_bf16_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_and_batch():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2,
    )  # fmt: skip
    ids = torch.randint(5, 60, (4, 12))
    return BertForSequenceClassification(config), {"input_ids": ids, "labels": torch.tensor([0, 1, 1, 0])}


def layer_input_dtypes(model, batch, autocast: bool) -> tuple[list[torch.dtype], torch.Tensor]:
    seen = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: seen.append(i[0].dtype))
        for layer in model.bert.encoder.layer
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(**batch).loss
    for hook in hooks:
        hook.remove()
    return seen, loss.float()


def test_the_stream_is_bf16_under_autocast_and_the_loss_agrees():
    model, batch = model_and_batch()
    before, fp32_stream = layer_input_dtypes(model, batch, autocast=True)
    _, exact = layer_input_dtypes(model, batch, autocast=False)
    assert use_bf16_stream(model) == 1 and use_bf16_stream(model) == 0  # one embeddings module, hooked once
    after, bf16_stream = layer_input_dtypes(model, batch, autocast=True)
    assert before == [torch.float32] * 2 and after == [torch.bfloat16] * 2
    # bf16 keeps 8 bits: both autocast losses lie within bf16 rounding of the fp32 one
    assert abs(bf16_stream - exact) < 0.02 and abs(fp32_stream - exact) < 0.02
    unchanged, plain = layer_input_dtypes(model, batch, autocast=False)
    assert unchanged == [torch.float32] * 2 and torch.equal(plain, exact)
    loss = layer_input_dtypes(model, batch, autocast=True)[1]
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(**batch).loss.backward()
    assert loss.isfinite() and all(
        p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None
    )
