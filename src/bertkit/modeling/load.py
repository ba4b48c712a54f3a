"""Build or load models and tokenizers, attach task heads, freeze layers.

Hub ids and local directories load the same way; remote code stays off unless the user asks. A model
that cannot be found or read, or a window longer than its positions, is one clear line before any work.
Weights are never unpickled as arbitrary objects, and a config.json whose sizes do not fit its weights is
refused, naming the tensors, instead of training from weights transformers quietly started at random.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig
from transformers.utils import logging as hf_logging

from bertkit.config import ModelConfig
from bertkit.errors import BertkitError
from bertkit.modeling.freeze import freeze

log = logging.getLogger(__name__)

# These number positions from pad_token_id + 1 (fairseq's habit), so that many fewer are usable.
PADDING_OFFSET_MODELS = {
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "roberta-prelayernorm",
    "camembert",
    "longformer",
    "data2vec-text",
    "xmod",
    "luke",
    "mpnet",
    "ibert",
    "markuplm",
    "lilt",
    "layoutlmv3",
}


def check_model(cfg: ModelConfig) -> PretrainedConfig:
    """The model's config, resolved once before any work; refuses a max_length beyond its positions."""
    config = load_config(cfg)
    limit = position_limit(config)
    if limit is not None and cfg.max_length > limit:
        raise BertkitError(
            f"--max-length {cfg.max_length} is more than {cfg.name_or_path} takes ({limit} positions); "
            f"pass --max-length {limit} or less"
        )
    return config


def position_limit(config: PretrainedConfig) -> int | None:
    """Sub-word tokens one window may hold, or None where positions are relative only (DeBERTa-v3)."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or getattr(config, "position_biased_input", True) is False:
        return None
    if config.model_type in PADDING_OFFSET_MODELS:
        limit -= (config.pad_token_id or 0) + 1
    return limit


def load_config(cfg: ModelConfig, **config_kwargs: Any) -> PretrainedConfig:
    """``AutoConfig.from_pretrained`` for a local directory or a hub id, its failures as one line."""
    name = require_model_name(cfg)
    local = Path(name).is_dir()
    if local and not (Path(name) / "config.json").is_file():
        raise BertkitError(f"--model {name}: not a model directory (no config.json)")
    try:
        return AutoConfig.from_pretrained(
            name, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, **config_kwargs
        )
    except (OSError, ValueError) as err:
        where = "" if local else " (no such local directory; tried the hub)"
        raise BertkitError(f"cannot load model {name}{where}: {first_line(err)}") from err


def dropout_settings(cfg: ModelConfig) -> dict[str, float]:
    """``--model.dropout`` as config fields: every dropout of a BERT-family encoder, after its hidden
    layers and on its attention probabilities (only the first would leave dropout on at 0)."""
    if cfg.dropout is None:
        return {}
    return {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}


def require_model_name(cfg: ModelConfig) -> str:
    """The model's name, refused early when it is a file or a missing local directory."""
    name = cfg.name_or_path
    if not name:
        raise BertkitError("no model: pass --model (a local directory or a hub id)")
    path = Path(name).expanduser()
    if path.is_file():
        raise BertkitError(f"--model {name} is a file; it takes a model directory or a hub id")
    if path.is_dir():
        return str(path)
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise BertkitError(f"--model {name}: no such model directory") from None
    return name  # a hub id, or a relative path that does not exist: the hub's answer says which


def first_line(err: Exception) -> str:
    # transformers' messages go on with advice on several lines; the first says what went wrong
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_tokenizer(cfg: ModelConfig) -> Any:
    """A fast tokenizer: word ids and character offsets are needed to align labels and windows."""
    name = require_model_name(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise BertkitError(f"cannot load the tokenizer of {name}: {first_line(err)}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise BertkitError(f"{cfg.name_or_path}: bertkit needs a fast (Rust) tokenizer; none was found")
    return tokenizer


def load_model(auto_class: Any, cfg: ModelConfig, **config_kwargs: Any) -> torch.nn.Module:
    """``auto_class.from_pretrained`` with the user's revision, dropout and remote-code choices.

    New head weights are initialised from the global torch seed, so seed before calling.
    """
    config = load_config(cfg, **dropout_settings(cfg), **config_kwargs)
    name = require_model_name(cfg)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new head as "missing"; we say it once
    try:
        model, info = auto_class.from_pretrained(
            name,
            config=config,
            revision=cfg.revision,
            trust_remote_code=cfg.trust_remote_code,
            weights_only=True,  # a pytorch_model.bin is read as tensors, never as arbitrary objects
            ignore_mismatched_sizes=True,  # the mismatches come back in ``info``, named by check_weights_fit
            output_loading_info=True,
        )
    except pickle.UnpicklingError as err:
        raise BertkitError(refused_pickle(name, err)) from None
    except (OSError, ValueError, RuntimeError) as err:
        raise BertkitError(f"cannot load the weights of {name}: {first_line(err)}") from err
    finally:
        hf_logging.set_verbosity(verbosity)
    check_weights_fit(name, model, info)
    freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("model %s: %s parameters, %s trainable", cfg.name_or_path, f"{total:,}", f"{trainable:,}")
    return model


def refused_pickle(name: str, err: Exception) -> str:
    """Why a pickled weights file was not loaded, naming what it tried to import (``posix.system``)."""
    found = re.search(r"GLOBAL (\S+)", str(err))
    what = f" ({found.group(1)})" if found else ""
    return (
        f"{name}: refused its PyTorch weights file: it holds pickled objects other than tensors{what}, "
        "which would run code when loaded; bertkit reads .bin weights with weights_only=True only. "
        "Use a model.safetensors from a source you trust"
    )


def check_weights_fit(name: str, model: torch.nn.Module, info: dict[str, Any]) -> None:
    """Refuse weights whose shapes differ from what config.json builds (hidden_size, vocab_size, ...), or
    a config that builds pretrained parts (layers) the weights do not hold. A new head and a pooler the
    checkpoint lacks are normal: those start random, as fine-tuning expects. Weights the config has no
    place for (a 12-layer checkpoint cut to 6 layers on purpose) are only reported."""
    mismatched = sorted(info.get("mismatched_keys", ()), key=lambda item: item[0])
    if mismatched:
        shown = "; ".join(
            f"{key} is {list(saved)} in the weights, {list(built)} by config.json"
            for key, saved, built in mismatched[:3]
        )
        more = f" (and {len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
        raise BertkitError(f"{name}: config.json does not match the weights: {shown}{more}")
    missing = sorted(key for key in info.get("missing_keys", ()) if is_pretrained_part(model, key))
    if missing:
        raise BertkitError(
            f"{name}: config.json builds {len(missing)} weights of the pretrained model that the weights "
            f"file does not hold (first: {', '.join(missing[:3])}); its sizes do not match the weights"
        )
    unused = sorted(key for key in info.get("unexpected_keys", ()) if is_pretrained_part(model, key))
    if unused:
        log.warning(
            "%s: %d weights have no place in the model config.json builds and are not used (first: %s)",
            name,
            len(unused),
            ", ".join(unused[:3]),
        )


def is_pretrained_part(model: torch.nn.Module, key: str) -> bool:
    """Whether ``key`` (the model's name or the checkpoint's, with or without the body's prefix) names a
    weight of the pretrained body other than its pooler, not one of the task head."""
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    body = getattr(model, "base_model", model)
    part = key.removeprefix(prefix).split(".")[0]
    return part != "pooler" and part in dict(body.named_children())
