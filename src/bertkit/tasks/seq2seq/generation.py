"""Generation settings and the search: greedy, beam search or sampling over a memory of encoded windows.

The settings go into a ``GenerationConfig`` (saved as ``generation_config.json`` with the model, so
plain ``model.generate`` uses them too), never onto ``model.config``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GenerationConfig
from transformers.modeling_outputs import BaseModelOutput


def generation_config(cfg: Any, *, start: int, end: int, pad: int, max_new_tokens: int) -> GenerationConfig:
    """The search ``cfg`` (the seq2seq config section) asks for, with the decoder's special tokens."""
    sampling = {}
    if cfg.do_sample:
        sampling = {"temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p}
    return GenerationConfig(
        decoder_start_token_id=start,
        bos_token_id=start,
        eos_token_id=end,
        pad_token_id=pad,
        max_new_tokens=max_new_tokens,
        min_new_tokens=cfg.min_new_tokens,
        num_beams=cfg.num_beams,
        length_penalty=cfg.length_penalty,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        do_sample=cfg.do_sample,
        early_stopping=cfg.num_beams > 1 or None,
        **sampling,
    )


def generate(
    model: Any, memory: BaseModelOutput, mask: torch.Tensor, config: GenerationConfig
) -> torch.Tensor:
    """Generated ids, one row per record (the start token first, padded after the end token)."""
    return model.generate(encoder_outputs=memory, attention_mask=mask, generation_config=config)
