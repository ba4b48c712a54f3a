"""Saving and loading: models in the Hugging Face layout, training checkpoints for exact resume.

A checkpoint (weights + training state) is one atomic unit: written and fsynced under a temporary
directory, then swapped into place, so a kill at any moment leaves the previous checkpoint or the new
one, never a mix; a write that fails (disk full, read-only directory) is one ``WriteError`` naming the
directory, the previous checkpoint kept. Loads never unpickle arbitrary objects: weights come from
safetensors, training state from ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig

from bertkit.atomic import WriteError, atomic_dir_files, recover_aside, swap_folder, write_errors_named
from bertkit.modeling.load import position_limit

STATE_FILE = "training_state.pt"
MODEL_STATE_FILE = "model.safetensors"


def save_model(
    model: torch.nn.Module, tokenizer: Any, out_dir: str | Path, state_dict: dict[str, Any] | None = None
) -> None:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files, each atomically;
    ``state_dict`` replaces the model's own (a copy of each shared weight, for instance)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Writing model shards" bar would cut through the training bar
    try:
        with atomic_dir_files(out_dir) as scratch, io_errors_named(out_dir, "the model there is kept"):
            extra = {} if state_dict is None else {"state_dict": state_dict}
            model.save_pretrained(scratch, safe_serialization=True, **extra)
            with saved_length(tokenizer, model):
                tokenizer.save_pretrained(scratch)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def saved_length(tokenizer: Any, model: torch.nn.Module) -> Iterator[None]:
    """While saving, a tokenizer without a length (``tokenizers`` gives 1e30: ours from ``bertkit vocab``,
    many on the hub) holds the model's positions, so that ``truncation=True`` in plain transformers
    cuts at the model's limit instead of crashing past it. bertkit itself never truncates (it windows);
    the tokenizer in use is left as it was."""
    config = getattr(model, "config", None)
    config = getattr(config, "encoder", config)  # an encoder-decoder: the encoder reads the text
    limit = position_limit(config) if isinstance(config, PretrainedConfig) else None
    original = getattr(tokenizer, "model_max_length", None)
    if limit is None or not isinstance(original, int) or original <= 10**9:
        yield
        return
    tokenizer.model_max_length = limit
    try:
        yield
    finally:
        tokenizer.model_max_length = original


def save_training_state(ckpt_dir: str | Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Write weights (safetensors) and ``state`` (tensors and plain data) as one atomic directory.

    The steps: write both files under ``.NAME.*.tmp``, fsync them and that directory; move the old
    checkpoint aside to ``.NAME.old``, rename the new one into place, fsync the parent, drop the old.
    A kill between the two renames leaves no ``NAME``: ``recover_checkpoint`` puts the old one back
    (``atomic.swap_folder``).
    """
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    parent = ckpt_dir.parent
    with io_errors_named(ckpt_dir, "the previous checkpoint is kept"):
        parent.mkdir(parents=True, exist_ok=True)
        recover_checkpoint(ckpt_dir)
        scratch = Path(tempfile.mkdtemp(dir=parent, prefix=f".{ckpt_dir.name}.", suffix=".tmp"))
        try:
            weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(dedupe_shared(weights), str(scratch / MODEL_STATE_FILE))
            with open(scratch / STATE_FILE, "wb") as f:
                torch.save(state, f)
            swap_folder(scratch, ckpt_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # a failed write's half; gone after a swap


@contextlib.contextmanager
def io_errors_named(path: Path | str, kept: str) -> Iterator[None]:
    """``atomic.write_errors_named``, for safetensors' I/O errors too (not OSErrors, but the same)."""
    from safetensors import SafetensorError

    with write_errors_named(path, kept):
        try:
            yield
        except SafetensorError as err:
            if "I/O error" not in str(err):
                raise
            raise WriteError(f"cannot write {path}: {err}; {kept}") from err


def load_training_state(ckpt_dir: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Restore the weights into ``model`` and return the rest of the saved state."""
    ckpt_dir = Path(ckpt_dir)
    recover_checkpoint(ckpt_dir)
    load_weights(model, ckpt_dir / MODEL_STATE_FILE)
    return read_training_state(ckpt_dir)


def read_training_state(ckpt_dir: str | Path, mmap: bool = False) -> dict[str, Any]:
    """The saved state without the weights (``mmap``: cheap to look at before a long set-up)."""
    ckpt_dir = Path(ckpt_dir)
    recover_checkpoint(ckpt_dir)
    return torch.load(ckpt_dir / STATE_FILE, weights_only=True, map_location="cpu", mmap=mmap)


def has_checkpoint(ckpt_dir: str | Path) -> bool:
    ckpt_dir = Path(ckpt_dir)
    recover_checkpoint(ckpt_dir)
    return (ckpt_dir / STATE_FILE).is_file() and (ckpt_dir / MODEL_STATE_FILE).is_file()


def recover_checkpoint(ckpt_dir: str | Path) -> None:
    """Finish or undo a checkpoint swap that a kill interrupted."""
    recover_aside(Path(ckpt_dir))


def clean_orphans(out_dir: str | Path, ckpt_name: str = "checkpoint") -> list[Path]:
    """Remove what killed writers leave in ``out_dir`` (scratch directories, ``.tmp`` files)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    recover_checkpoint(out_dir / ckpt_name)
    removed = []
    for path in out_dir.iterdir():
        if path.name.startswith(".") and (path.name.endswith(".tmp") or path.name.startswith(".saving-")):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


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
