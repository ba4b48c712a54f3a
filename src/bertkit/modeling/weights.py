"""State dicts that safetensors accepts from models whose modules share weights."""

from __future__ import annotations

import torch


def unshared(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied or shared weights): later names get a copy,
    so each name loads on its own (into a model that shares nothing, too)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in weights.items():
        tensor = tensor.detach().contiguous()
        ptr = tensor.data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out
