"""The top layer at [CLS] only: the same logits and gradients as the whole layer, over random
lengths and padding, for each attention implementation the models run on."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

from bertkit.modeling.dropout import use_fast_dropout
from bertkit.modeling.first_token import first_token_top_layer, top_layer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def classifier(attention: str, **extra) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
        attn_implementation=attention,
        **extra,
    )
    return BertForSequenceClassification(config).train()


def batch_of(lengths: list[int], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.randint(5, 50, (len(lengths), longest), generator=generator)
    mask = (torch.arange(longest) < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": torch.arange(len(lengths)) % 3}


def loss_and_grads(model, batch, first_token: bool):
    model.zero_grad()
    with first_token_top_layer(model) if first_token else torch.enable_grad():
        out = model(**batch)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attention", ["sdpa", "eager", "bertkit"])
@settings(max_examples=12, deadline=None, derandomize=True)
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_same_logits_and_gradients_as_the_whole_top_layer(attention, lengths, seed):
    model = classifier("sdpa" if attention == "bertkit" else attention)
    if attention == "bertkit":
        use_fast_dropout(model)  # bertkit's own attention function, which training uses on the CPU
    batch = batch_of(lengths, seed)
    logits, grads = loss_and_grads(model, batch, first_token=False)
    fast_logits, fast_grads = loss_and_grads(model, batch, first_token=True)
    torch.testing.assert_close(fast_logits, logits, atol=1e-6, rtol=1e-5)
    assert fast_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(fast_grads[name], grads[name], atol=1e-6, rtol=1e-5)


def test_the_top_layer_really_runs_one_position_and_is_restored():
    model = classifier("sdpa")
    layer = model.bert.encoder.layer[-1]
    seen = []
    handle = layer.output.dense.register_forward_hook(lambda m, i, out: seen.append(out.shape[1]))
    with first_token_top_layer(model) as used:
        model(**batch_of([7, 4], 0))
    model(**batch_of([7, 4], 0))
    handle.remove()
    assert used and seen == [1, 7]
    assert "forward" not in vars(layer)


def test_only_where_the_head_reads_position_zero_alone_and_in_training():
    torch.manual_seed(0)
    tagger = BertForTokenClassification(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    assert top_layer(tagger) is None  # every position is read
    assert top_layer(classifier("sdpa", output_hidden_states=True)) is None
    model = classifier("sdpa").eval()
    with first_token_top_layer(model) as used:
        assert not used
