"""Freezing: stop gradients to the embeddings and the bottom encoder layers."""

from __future__ import annotations

import torch

from bertkit.errors import BertkitError


def freeze(model: torch.nn.Module, embeddings: bool, layers: int) -> None:
    """Stop gradients to the embeddings and/or the bottom ``layers`` encoder layers."""
    if not embeddings and layers <= 0:
        return
    base = getattr(model, model.base_model_prefix, model)
    if embeddings:
        base.embeddings.requires_grad_(False)
    encoder_layers = base.encoder.layer
    if layers > len(encoder_layers):
        raise BertkitError(f"cannot freeze {layers} layers: the model has {len(encoder_layers)}")
    for layer in encoder_layers[:layers]:
        layer.requires_grad_(False)
