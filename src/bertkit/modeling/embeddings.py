"""The input embedding matrix of a pretrained model, read from its safetensors file alone.

Augmentation needs only this one tensor; loading the whole model for it would double peak memory
before the model to train is even built.
"""

from __future__ import annotations

import json
import logging

import torch
from safetensors import safe_open
from transformers.utils import cached_file

from bertkit.config import ModelConfig
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)

SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
EMBEDDING_SUFFIX = "embeddings.word_embeddings.weight"  # BERT, RoBERTa, ELECTRA, MiniLM, ...


def input_embeddings(cfg: ModelConfig) -> torch.Tensor:
    """The ``[vocabulary, hidden]`` input embedding matrix of ``cfg.name_or_path``."""
    where = {"revision": cfg.revision, "_raise_exceptions_for_missing_entries": False}
    path = cached_file(cfg.name_or_path, SINGLE_FILE, **where)
    if path is None:
        index = cached_file(cfg.name_or_path, SHARD_INDEX, **where)
        if index is None:
            return embeddings_of_loaded_model(cfg)
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        key = embedding_key(weight_map, cfg.name_or_path)
        return read_tensor(cached_file(cfg.name_or_path, weight_map[key], revision=cfg.revision), key)
    with safe_open(path, framework="pt") as f:
        return f.get_tensor(embedding_key(f.keys(), cfg.name_or_path))


def embedding_key(keys: object, model: str | None) -> str:
    found = [k for k in keys if k.endswith(EMBEDDING_SUFFIX)]  # type: ignore[attr-defined]
    if not found:
        raise BertkitError(f"{model}: no tensor named *{EMBEDDING_SUFFIX} in its weights")
    return min(found, key=len)  # the encoder's own, not a decoder's copy


def read_tensor(path: str, key: str) -> torch.Tensor:
    with safe_open(path, framework="pt") as f:
        return f.get_tensor(key)


def embeddings_of_loaded_model(cfg: ModelConfig) -> torch.Tensor:
    """Fallback for weights without safetensors: load the base model (weights only) and take them."""
    from transformers import AutoModel

    log.info("%s has no safetensors weights: loading the model to read its embeddings", cfg.name_or_path)
    model = AutoModel.from_pretrained(
        cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
    )
    return model.get_input_embeddings().weight.detach().clone()
