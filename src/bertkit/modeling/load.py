"""Build or load models and tokenizers, attach task heads, freeze layers.

Hub ids and local directories load the same way; remote code stays off unless the user asks.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging as hf_logging

from bertkit.config import ModelConfig
from bertkit.errors import BertkitError
from bertkit.modeling.freeze import freeze

log = logging.getLogger(__name__)


def load_tokenizer(cfg: ModelConfig) -> Any:
    """A fast tokenizer: word ids and character offsets are needed to align labels and windows."""
    tokenizer = AutoTokenizer.from_pretrained(
        cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
    )
    if not getattr(tokenizer, "is_fast", False):
        raise BertkitError(f"{cfg.name_or_path}: bertkit needs a fast (Rust) tokenizer; none was found")
    return tokenizer


def load_model(auto_class: Any, cfg: ModelConfig, **config_kwargs: Any) -> torch.nn.Module:
    """``auto_class.from_pretrained`` with the user's revision, dropout and remote-code choices.

    New head weights are initialised from the global torch seed, so seed before calling.
    """
    if cfg.dropout is not None:
        config_kwargs["hidden_dropout_prob"] = cfg.dropout
    config = AutoConfig.from_pretrained(
        cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, **config_kwargs
    )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new head as "missing"; we say it once
    try:
        model = auto_class.from_pretrained(
            cfg.name_or_path, config=config, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("model %s: %s parameters, %s trainable", cfg.name_or_path, f"{total:,}", f"{trainable:,}")
    return model
