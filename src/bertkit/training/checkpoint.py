"""Saving and loading: models in the Hugging Face layout, training state for exact resume.

Every file is written to a temporary name in the same directory and renamed into place, so a crash
leaves either the old file or the new one, never half of one. Loads never unpickle arbitrary objects:
weights come from safetensors, training state from ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bertkit.atomic import atomic_dir_files, atomic_path

STATE_FILE = "training_state.pt"
MODEL_STATE_FILE = "model.safetensors"


def save_model(model: torch.nn.Module, tokenizer: Any, out_dir: str | Path) -> None:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files, each atomically."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Writing model shards" bar would cut through the training bar
    try:
        with atomic_dir_files(out_dir) as scratch:
            model.save_pretrained(scratch, safe_serialization=True)
            tokenizer.save_pretrained(scratch)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def save_training_state(ckpt_dir: str | Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Weights (safetensors) plus optimizer, scheduler, RNG and loop position (tensors and plain data)."""
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(ckpt_dir / MODEL_STATE_FILE) as tmp:
        save_file(dedupe_shared(weights), str(tmp))
    with atomic_path(ckpt_dir / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_training_state(ckpt_dir: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Restore the weights into ``model`` and return the rest of the saved state."""
    ckpt_dir = Path(ckpt_dir)
    load_weights(model, ckpt_dir / MODEL_STATE_FILE)
    return torch.load(ckpt_dir / STATE_FILE, weights_only=True, map_location="cpu")


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a safetensors file into ``model``; every parameter must be there (tied ones once)."""
    from safetensors.torch import load_file

    weights = load_file(str(path))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not is_tied(model, k)]
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def dedupe_shared(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share storage (tied embeddings); keep the first name of each."""
    seen: set[int] = set()
    out = {}
    for name, tensor in weights.items():
        key = tensor.untyped_storage().data_ptr()
        if key in seen and tensor.numel() > 0:
            continue
        seen.add(key)
        out[name] = tensor
    return out


def is_tied(model: torch.nn.Module, name: str) -> bool:
    params = dict(model.named_parameters(remove_duplicate=False))
    if name not in params:
        return False
    ptr = params[name].untyped_storage().data_ptr()
    return sum(p.untyped_storage().data_ptr() == ptr for p in params.values()) > 1
