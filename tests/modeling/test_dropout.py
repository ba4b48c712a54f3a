"""Cheaper dropout masks: the drop rate is p, kept values are scaled, and attention in training computes
what SDPA computes (checked with the mask made all-keep), causal and padded."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import AutoModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from bertkit.modeling import dropout as fast
from bertkit.modeling.dropout import ATTENTION, FastDropout, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.02])
def test_the_mask_keeps_each_element_with_probability_one_minus_p(p):
    torch.manual_seed(0)
    n = 400_000
    kept = keep_mask(torch.Size([n]), p, torch.device("cpu")).float().mean().item()
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


def test_masks_differ_between_calls_and_follow_the_seed():
    torch.manual_seed(1)
    a, b = (
        keep_mask(torch.Size([64, 64]), 0.5, torch.device("cpu")),
        keep_mask(torch.Size([64, 64]), 0.5, torch.device("cpu")),
    )
    torch.manual_seed(1)
    assert torch.equal(keep_mask(torch.Size([64, 64]), 0.5, torch.device("cpu")), a)
    assert not torch.equal(a, b)


def test_fast_dropout_scales_what_it_keeps_and_is_off_in_eval():
    x = torch.ones(1000, 100)
    layer = FastDropout(0.25).train()
    y = layer(x)
    assert set(y.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.equal(layer.eval()(x), x)


class Head(nn.Module):
    def __init__(self, causal: bool):
        super().__init__()
        self.is_causal, self.training = causal, True


@pytest.mark.parametrize("causal", [False, True])
def test_training_attention_is_sdpa_math_when_nothing_is_dropped(monkeypatch, causal):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    lengths = torch.tensor([7, 4])
    mask = (torch.arange(7)[None, :] < lengths[:, None])[:, None, None, :].expand(2, 1, 7, 7)
    if causal:
        mask = mask & torch.ones(7, 7, dtype=torch.bool).tril()
    expected, _ = sdpa_attention_forward(Head(causal), q, k, v, mask, dropout=0.0, scaling=0.3)
    monkeypatch.setattr(fast, "fast_dropout", lambda x, p: x)
    got, _ = fast.attention_forward(Head(causal), q, k, v, mask, dropout=0.1, scaling=0.3)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1, :4], expected[1, :4])  # the padded queries attend to nothing real
    if causal:  # no mask given: the causal one is built
        expected, _ = sdpa_attention_forward(Head(True), q, k, v, None, dropout=0.0, is_causal=True)
        got, _ = fast.attention_forward(Head(True), q, k, v, None, dropout=0.1)
        torch.testing.assert_close(got, expected)


def test_a_model_gets_the_cheaper_dropout_and_evaluates_as_before(tiny_bert):
    model = AutoModel.from_pretrained(tiny_bert).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    swapped = use_fast_dropout(model)
    assert swapped == sum(isinstance(m, FastDropout) for m in model.modules()) > 0
    assert model.config._attn_implementation == ATTENTION
    assert "_attn_implementation" not in model.config.to_json_string()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, before)
    model.train()
    torch.manual_seed(0)
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert not torch.allclose(out, before) and torch.isfinite(out).all()
