"""The top encoder layer at the first position only, for heads that read nothing else.

A sequence-classification head of BERT, RoBERTa or ELECTRA reads the top layer's output at ``[CLS]``
alone, yet the layer computes every position: its queries, attention, output projection, feed-forward
network, layer norms and dropout, forward and backward. Only its keys and values need every position
(``[CLS]`` attends to all of them). ``first_token_top_layer`` makes that layer compute its queries and
everything after them at position 0: the same output there, about a sixth of MiniLM's encoder work
saved (a twelfth of BERT-base's). The top layer then returns one position, so it is used in training,
where only the head's loss is read, and not where hidden states are wanted (explanations, selection).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward

# heads that read the top layer at position 0 only (the pooler's [CLS], or features[:, 0])
FIRST_TOKEN_HEADS = (
    "BertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
    "CamembertForSequenceClassification",
    "ElectraForSequenceClassification",
)


def top_layer(model: nn.Module) -> nn.Module | None:
    """The top encoder layer of ``model`` if its head reads position 0 alone and the layer is BERT's
    (self-attention with query/key/value, output, ``feed_forward_chunk``; no decoder); else None."""
    if type(model).__name__ not in FIRST_TOKEN_HEADS or model.config.output_hidden_states:
        return None
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if not layers:
        return None
    layer = layers[-1]
    attention = getattr(getattr(layer, "attention", None), "self", None)
    parts = ("query", "key", "value", "attention_head_size", "scaling")
    if attention is None or not all(hasattr(attention, p) for p in parts):
        return None
    if getattr(layer, "is_decoder", False) or not hasattr(layer, "feed_forward_chunk"):
        return None
    return layer


def first_position_forward(
    layer: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """``BertLayer.forward`` for the output at position 0: ``[batch, 1, hidden]``."""
    attention = layer.attention.self
    first = hidden_states[:, :1]

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], -1, attention.attention_head_size).transpose(1, 2)

    query = heads(attention.query(first))
    key, value = heads(attention.key(hidden_states)), heads(attention.value(hidden_states))
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
        attention_mask = attention_mask[:, :, :1]  # the mask's row of the one query
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(
        attention.config._attn_implementation, eager_attention_forward
    )
    context, _ = interface(
        attention,
        query,
        key,
        value,
        attention_mask,
        dropout=attention.dropout.p if attention.training else 0.0,
        scaling=attention.scaling,
    )
    attended = layer.attention.output(context.reshape(*first.shape[:-1], -1).contiguous(), first)
    return layer.feed_forward_chunk(attended)


@contextlib.contextmanager
def first_token_top_layer(model: nn.Module) -> Iterator[bool]:
    """Inside the block, ``model``'s top layer computes position 0 only (where ``top_layer`` finds one
    and the model is training); yields whether it does."""
    layer = top_layer(model) if model.training else None
    if layer is None:
        yield False
        return

    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *_: Any, **__: Any):
        # the rest (encoder states, cache) is for decoders, which ``top_layer`` leaves out
        return first_position_forward(layer, hidden_states, attention_mask)

    layer.forward = forward  # an instance attribute: nothing of it is saved, and ``del`` undoes it
    try:
        yield True
    finally:
        del layer.forward
