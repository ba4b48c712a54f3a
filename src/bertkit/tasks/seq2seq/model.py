"""The encoder-decoder, warm-started from BERT checkpoints as Rothe et al. (2020) did.

``bert2bert``: the encoder from one checkpoint, the decoder from the same or another one with
cross-attention added (randomly initialised); ``BERTShare`` (``share=True``): the decoder's embeddings,
self-attention and feed-forward layers *are* the encoder's, only cross-attention is its own. The
decoder starts generating at ``[CLS]`` and stops at ``[SEP]`` of its own vocabulary; those settings live
in ``generation_config``, never on ``model.config`` (where transformers 5 refuses them on save).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoModel, AutoModelForCausalLM, EncoderDecoderModel
from transformers.utils import logging as hf_logging

from bertkit.config import ModelConfig
from bertkit.errors import BertkitError
from bertkit.modeling.freeze import freeze
from bertkit.modeling.load import dropout_settings, load_config

log = logging.getLogger(__name__)


def build_encoder_decoder(
    encoder_cfg: ModelConfig,
    decoder_cfg: ModelConfig,
    encoder_vocab: int,
    decoder_vocab: int,
    share: bool,
    special: dict[str, int],
) -> EncoderDecoderModel:
    """The warm-started model; ``*_vocab`` are the tokenizers' sizes (added tokens included),
    ``special`` the decoder's ``decoder_start_token_id``, ``eos_token_id`` and ``pad_token_id``."""
    encoder_config = load_config(encoder_cfg, is_decoder=False, add_cross_attention=False)
    decoder_config = load_config(decoder_cfg, is_decoder=True, add_cross_attention=True)
    for config, cfg in ((encoder_config, encoder_cfg), (decoder_config, decoder_cfg)):
        for field, rate in dropout_settings(cfg).items():
            setattr(config, field, rate)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report lists the new cross-attention as "missing"
    try:
        encoder = AutoModel.from_pretrained(
            encoder_cfg.name_or_path,
            config=encoder_config,
            revision=encoder_cfg.revision,
            trust_remote_code=encoder_cfg.trust_remote_code,
        )
        decoder = AutoModelForCausalLM.from_pretrained(
            decoder_cfg.name_or_path,
            config=decoder_config,
            revision=decoder_cfg.revision,
            trust_remote_code=decoder_cfg.trust_remote_code,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if encoder.get_input_embeddings().num_embeddings < encoder_vocab:
        encoder.resize_token_embeddings(encoder_vocab)  # control tokens
    if decoder.get_input_embeddings().num_embeddings < decoder_vocab:
        decoder.resize_token_embeddings(decoder_vocab)
    pooler = getattr(encoder, "pooler", None)
    if pooler is not None:  # the decoder reads hidden states only; kept (and saved) but not trained
        pooler.requires_grad_(False)
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = special["decoder_start_token_id"]
    model.config.pad_token_id = special["pad_token_id"]
    model.config.eos_token_id = special["eos_token_id"]
    model.config.vocab_size = decoder.config.vocab_size
    if share:
        share_weights(model)
    freeze(model.encoder, encoder_cfg.freeze_embeddings, encoder_cfg.freeze_layers)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info(
        "encoder-decoder %s -> %s%s: %s parameters, %s trainable",
        encoder_cfg.name_or_path,
        decoder_cfg.name_or_path,
        " (shared weights)" if share else "",
        f"{total:,}",
        f"{trainable:,}",
    )
    return model


def decoder_base(model: Any) -> Any:
    """The decoder's transformer without its language-model head (``decoder.bert`` for BERT)."""
    return model.decoder.base_model


def share_weights(model: EncoderDecoderModel) -> None:
    """Make the decoder use the encoder's embeddings and layers (BERTShare); cross-attention stays its
    own. Both sides must have the same architecture and vocabulary."""
    encoder, decoder = model.encoder, decoder_base(model)
    if encoder.config.to_dict() | SHARE_IGNORED != decoder.config.to_dict() | SHARE_IGNORED:
        raise BertkitError("--share-weights needs the encoder and the decoder to be the same model")
    decoder.embeddings = encoder.embeddings
    for enc_layer, dec_layer in zip(encoder.encoder.layer, decoder.encoder.layer):
        dec_layer.attention.self = shared_self_attention(enc_layer.attention.self, dec_layer.attention.self)
        dec_layer.attention.output = enc_layer.attention.output
        dec_layer.intermediate = enc_layer.intermediate
        dec_layer.output = enc_layer.output
    model.decoder.tie_weights()  # the output projection follows the (now shared) word embeddings


# config fields that differ between an encoder and a decoder of the same checkpoint
SHARE_IGNORED = {
    "is_decoder": None,
    "add_cross_attention": None,
    "architectures": None,
    "_name_or_path": None,
}


def shared_self_attention(encoder_attention: torch.nn.Module, decoder_attention: torch.nn.Module) -> Any:
    """The encoder's self-attention weights in the decoder's (causal) self-attention module."""
    for name in ("query", "key", "value"):
        setattr(decoder_attention, name, getattr(encoder_attention, name))
    return decoder_attention
