"""A bf16 residual stream under autocast: the embeddings' output cast once, not every layer's input.

Under CPU bf16 autocast the embeddings (a look-up, a sum and a layer norm) stay in fp32, and a bf16
sub-layer output added to an fp32 residual is fp32 again, so the whole residual stream between the
layers is fp32 and autocast casts it to bf16 at the input of every linear layer (the same tensor three
times for the query, key and value projections), and the gradients back, about a thousand casts a
step on a 6 + 4 layer encoder-decoder. Cast the embeddings' output to bf16 instead, and the stream,
its layer norms and residual additions are bf16 (layer norm still accumulates in fp32). This is
Megatron-LM's bf16 default (its ``--fp32-residual-connection`` is off unless asked for); the weights,
their gradients and the optimizer stay fp32 as before.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def cast_to_bf16(module: nn.Module, inputs: Any, output: Any) -> Any:
    fp32 = isinstance(output, torch.Tensor) and output.dtype == torch.float32
    if fp32 and torch.is_autocast_enabled(output.device.type):
        return output.to(torch.get_autocast_dtype(output.device.type))
    return output


def use_bf16_stream(model: nn.Module) -> int:
    """Cast the output of each embeddings module of ``model`` (BERT-family ``*Embeddings``: those with a
    ``word_embeddings``) to the autocast dtype while autocast is on; returns how many got the hook."""
    hooked = 0
    for module in model.modules():
        embeddings = isinstance(getattr(module, "word_embeddings", None), nn.Module)
        if embeddings and cast_to_bf16 not in module._forward_hooks.values():
            module.register_forward_hook(cast_to_bf16)
            hooked += 1
    return hooked
