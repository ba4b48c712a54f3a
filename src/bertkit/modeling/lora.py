"""LoRA with ``peft``: low-rank adapters on chosen linear layers, the task head and added tokens trained
whole, and the merged model that ``transformers`` opens without peft.

Adapters go on through peft's generic ``PeftModel`` (no ``task_type``), whose ``forward`` passes every
input on: peft 0.21's ``PeftModelForQuestionAnswering`` drops ``token_type_ids``, so BERT QA under it
would see all-zero segment ids.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from torch import nn

from bertkit.atomic import atomic_dir_files
from bertkit.config import LoraConfig
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"  # where the adapter sits inside a model directory
WORD_EMBEDDINGS = "word_embeddings"


def head_modules(model: nn.Module) -> list[str]:
    """The children of ``model`` beside its pretrained base that hold weights: the task head."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    return [
        name
        for name, child in model.named_children()
        if child is not base and any(True for _ in child.parameters())
    ]


def adapter_targets(model: nn.Module, targets: Sequence[str], trained_whole: Sequence[str]) -> list[str]:
    """Full names of the linear layers named ``targets`` (by their last part), outside the modules
    trained whole: peft would otherwise nest an adapter inside a trained copy."""
    whole = tuple(trained_whole)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and name.rsplit(".", 1)[-1] in targets
        and not any(name == w or name.startswith(f"{w}.") or f".{w}." in f".{name}." for w in whole)
    ]
    if not names:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise BertkitError(
            f"--lora.targets {','.join(targets)}: no such linear layer in the model; "
            f"it has: {', '.join(linear)}"
        )
    return names


def add_lora(
    model: nn.Module, cfg: LoraConfig, trained_whole: Sequence[str], new_tokens: Sequence[int] = ()
) -> nn.Module:
    """``model`` wrapped with LoRA adapters; ``trained_whole`` modules (the head) and the embedding rows
    of ``new_tokens`` (entity markers, control codes) train in full and are saved with the adapter."""
    import peft

    targets = adapter_targets(model, cfg.targets, trained_whole)
    config = peft.LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        modules_to_save=list(trained_whole) or None,
        trainable_token_indices={WORD_EMBEDDINGS: list(new_tokens)} if new_tokens else None,
    )
    with quiet_peft():
        wrapped = peft.get_peft_model(model, config)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.get_base_model().parameters())
    log.info(
        "LoRA r=%d on %d layers (%s), trained whole: %s%s; %s of %s parameters trainable (%.2f%%)",
        cfg.r,
        len(targets),  # peft folds config.target_modules into name suffixes: count our own list
        ",".join(cfg.targets),
        ", ".join(trained_whole) or "nothing",
        f", {len(new_tokens)} added token embeddings" if new_tokens else "",
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / total,
    )
    return wrapped


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing``: not the user's doing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def is_lora(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def merged(model: nn.Module) -> nn.Module:
    """A copy of the LoRA ``model`` with the adapters folded into its weights: the plain model."""
    return copy.deepcopy(model).merge_and_unload()


def save_adapter(model: nn.Module, out_dir: str | Path) -> None:
    """The adapter (its weights, the head's and the added tokens' rows) in peft's layout, each file
    atomic. Whole embedding matrices are not saved: the added rows are in the adapter, and peft's
    "auto" check for a resized vocabulary asks the hub."""
    with atomic_dir_files(out_dir) as scratch:
        model.save_pretrained(scratch, safe_serialization=True, save_embedding_layers=False)


def load_adapter(base: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """``base`` with the adapter of ``adapter_dir`` merged in (safetensors only)."""
    import peft

    if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        raise BertkitError(f"{adapter_dir}: no adapter_model.safetensors")
    with quiet_peft():
        model = peft.PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    return model.merge_and_unload()
