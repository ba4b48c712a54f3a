"""Dropout with cheaper masks, for training on CPUs.

torch's CPU dropout draws one random number per element (``bernoulli_``): for BERT's attention
probabilities (batch x heads x length x length) that alone takes about a third of a training step at 300
sub-words, more than all the matmuls of attention (measured with torch.profiler on MiniLM, SciTLDR
batches of 16). Here a mask draws 16 random bits per element, four elements per random int64 word, and
attention in training runs the same math as SDPA's reference path with that mask. The drop rate is
``p`` to within 2^-16; evaluation and ``p = 0`` go to SDPA unchanged. ``use_fast_dropout(model)`` swaps
both in for training; nothing of it is saved with the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

ATTENTION = "bertkit_sdpa"
WORD_BITS = 16


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A boolean mask of ``shape``, each element True (kept) with probability ``1 - p``."""
    n = shape.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    bits = words.view(torch.int16)[:n]
    return (bits >= -(2 ** (WORD_BITS - 1)) + round(p * 2**WORD_BITS)).view(shape)


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout of ``x`` (training), the kept elements scaled by ``1 / (1 - p)``."""
    if p <= 0:
        return x
    if p >= 1:
        return torch.zeros_like(x)
    return torch.where(keep_mask(x.shape, p, x.device), x * (1.0 / (1.0 - p)), 0.0)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheaper mask; the same module otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return fast_dropout(x, self.p)


def attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA when nothing is dropped; else its math with ``fast_dropout`` on the probabilities."""
    if dropout == 0.0 or not module.training or query.shape[1] != key.shape[1]:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
    if attention_mask is None and causal and query.shape[2] > 1:
        attention_mask = torch.ones(
            query.shape[2], key.shape[2], dtype=torch.bool, device=query.device
        ).tril()
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            # a large negative, not -inf: a row with nothing to attend (padding) stays finite
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


ALL_ATTENTION_FUNCTIONS.register(ATTENTION, attention_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every ``nn.Dropout`` of ``model`` for ``FastDropout`` and route SDPA attention through
    ``attention_forward``; returns how many dropout modules were swapped. Models on other attention
    implementations (eager, flash) keep theirs."""
    swapped = 0
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p, child.inplace).train(child.training))
                swapped += 1
    for module in model.modules():
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) == "sdpa":
            config._attn_implementation = ATTENTION
    return swapped
