"""ELECTRA's replaced-token detection (Clark et al., 2020, "ELECTRA: Pre-training Text Encoders as
Discriminators Rather Than Generators") for BERT encoders: ``--objective electra``.

A small generator, a masked LM that shares the model's embeddings, fills the masked positions with
tokens sampled from its own predictions; the model itself (the discriminator) then tells at every real
position whether the token there is the original. Every token teaches the discriminator, not only the
15% that are masked, which is why ELECTRA learns more per FLOP than MLM, most of all early in
training. transformers has ELECTRA's model classes but no pretraining for them; here the discriminator
is a plain ``BertModel``, so the result is saved in BERT's layout and fine-tunes as any BERT does.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

# ELECTRA's weight of the discriminator's loss against the generator's (lambda in the paper)
RTD_WEIGHT = 50.0


class ElectraPretraining(torch.nn.Module):
    """The discriminator (``.bert``, what is saved), the generator and the replaced-token head.

    The generator has the discriminator's width and fewer layers (the paper's generators are a quarter
    to a half of the discriminator; a shared embedding needs the same width here, so it is shallower
    instead); its word, position and segment embeddings and its output embedding are the
    discriminator's input embeddings, one set of weights trained by both losses, as in the paper.
    ``batches_trained`` counts training batches: the held-out losses cannot rank steps (a better
    generator makes the discriminator's task harder), so the latest evaluation is kept.
    """

    def __init__(self, discriminator: Any, generator: Any):
        super().__init__()
        self.bert = discriminator
        self.generator = generator
        generator.bert.embeddings = discriminator.embeddings
        generator.cls.predictions.decoder.weight = discriminator.embeddings.word_embeddings.weight
        hidden = discriminator.config.hidden_size
        self.rtd_head = torch.nn.Sequential(
            torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)
        )
        self.register_buffer("batches_trained", torch.zeros((), dtype=torch.long))

    @property
    def config(self) -> Any:
        return self.bert.config


def build_electra(discriminator: Any, generator_layers: int) -> ElectraPretraining:
    """The ELECTRA set-up around ``discriminator`` (a ``BertModel``): a new generator of
    ``generator_layers`` layers with the discriminator's width and vocabulary."""
    from transformers import BertForMaskedLM

    config = copy.deepcopy(discriminator.config)
    config.num_hidden_layers = generator_layers
    return ElectraPretraining(discriminator, BertForMaskedLM(config))


def electra_forward(
    model: ElectraPretraining,
    batch: dict[str, torch.Tensor],
    chosen: torch.Tensor,
    sparse_head: bool,
    rng: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """The generator's MLM logits and loss at the ``chosen`` positions, the sampled replacements and
    the discriminator's replaced-token logits and loss over the real (unpadded) positions."""
    inputs = {"attention_mask": batch["attention_mask"], "token_type_ids": batch["token_type_ids"]}
    hidden = model.generator.bert(input_ids=batch["input_ids"], **inputs).last_hidden_state
    head = model.generator.cls.predictions
    logits = (head(hidden[chosen]) if sparse_head else head(hidden)[chosen]).float()
    labels = batch["labels"][chosen]
    mlm_loss = F.cross_entropy(logits, labels) if len(labels) else logits.sum() * 0
    with torch.no_grad():  # sampling is not differentiated (the paper trains the generator by MLM only)
        sampled = torch.multinomial(torch.softmax(logits, -1), 1, generator=rng).squeeze(1)
        corrupted = batch["input_ids"].clone()
        corrupted[chosen] = sampled
        replaced = torch.zeros_like(chosen)
        replaced[chosen] = sampled != labels  # a sample equal to the original counts as original
        if model.training:
            model.batches_trained += 1
    states = model.bert(input_ids=corrupted, **inputs).last_hidden_state
    real = batch["attention_mask"].bool()
    rtd_logits = model.rtd_head(states[real]).squeeze(-1).float()
    rtd_labels = replaced[real].float()
    rtd_loss = F.binary_cross_entropy_with_logits(rtd_logits, rtd_labels)
    return {
        "mlm_logits": logits,
        "mlm_labels": labels,
        "mlm_loss": mlm_loss,
        "rtd_logits": rtd_logits,
        "rtd_labels": rtd_labels,
        "rtd_loss": rtd_loss,
        "loss": mlm_loss + RTD_WEIGHT * rtd_loss,
    }
