"""The relation classifier: a pretrained encoder, a representation of the marked pair, a linear layer.

``entity-start`` concatenates the encoder's last hidden states at the head's and the tail's opening
markers (the "entity start" representation of Baldini Soares et al. 2019, Matching the Blanks);
``cls`` takes the pooled ``[CLS]`` state, as ``BertForSequenceClassification`` does (the baseline).
Saved in the Hugging Face layout: ``config.json`` (the encoder's, with the labels and the
representation) and ``model.safetensors`` with the encoder under its usual prefix (``bert.``), so
``AutoModel.from_pretrained(DIR)`` and ``AutoTokenizer.from_pretrained(DIR)`` open the fine-tuned
encoder with its marker tokens without bertkit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.modeling_outputs import SequenceClassifierOutput

from bertkit.modeling.weights import unshared

ENTITY_START, CLS = "entity-start", "cls"
REPRESENTATIONS = (ENTITY_START, CLS)
WEIGHTS = "model.safetensors"


class EncoderForRelationClassification(nn.Module):
    """An encoder with a relation head; ``from_pretrained``/``save_pretrained`` as in transformers."""

    def __init__(self, encoder: Any, representation: str = ENTITY_START):
        super().__init__()
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
        self.config = encoder.config
        self.representation = representation
        # the encoder sits where its own task heads keep it, so its weights keep their usual names
        self.base_model_prefix = getattr(encoder, "base_model_prefix", "") or "encoder"
        self.add_module(self.base_model_prefix, encoder)
        width = self.config.hidden_size * (2 if representation == ENTITY_START else 1)
        dropout = getattr(self.config, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(self.config, "hidden_dropout_prob", 0.1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, self.config.num_labels)
        nn.init.normal_(self.classifier.weight, std=getattr(self.config, "initializer_range", 0.02))
        nn.init.zeros_(self.classifier.bias)

    @property
    def encoder_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    def get_input_embeddings(self) -> nn.Module:
        """The word embeddings, as transformers' models give them (peft's token training asks)."""
        return self.encoder_model.get_input_embeddings()

    def get_output_embeddings(self) -> None:
        return None  # a classifier: nothing is tied to the word embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        head_start: torch.Tensor | None = None,
        tail_start: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        out = self.encoder_model(**inputs)
        if self.representation == CLS:
            pooled = getattr(out, "pooler_output", None)
            pair = pooled if pooled is not None else out.last_hidden_state[:, 0]
        else:
            if head_start is None or tail_start is None:
                raise ValueError("the entity-start representation needs head_start and tail_start")
            # shape[0], not len(): len() makes the batch size a constant in a traced (ONNX) graph
            rows = torch.arange(input_ids.shape[0], device=input_ids.device)
            hidden = out.last_hidden_state
            pair = torch.cat([hidden[rows, head_start], hidden[rows, tail_start]], dim=-1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pair)))

    def save_pretrained(self, directory: str | Path, safe_serialization: bool = True, **_: Any) -> None:
        """``config.json`` and ``model.safetensors`` in ``directory`` (safetensors whatever is asked)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.relation_representation = self.representation
        self.config.save_pretrained(directory)
        save_file(unshared(self.state_dict()), str(directory / WEIGHTS), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory: str | Path, **_: Any) -> EncoderForRelationClassification:
        """The model ``save_pretrained`` wrote; every weight must be there."""
        config = AutoConfig.from_pretrained(str(directory))
        representation = getattr(config, "relation_representation", None)
        if representation is None:
            raise ValueError(f"{directory}: config.json has no relation_representation: not a relation model")
        model = cls(AutoModel.from_config(config), representation)
        missing, unexpected = model.load_state_dict(load_file(str(Path(directory) / WEIGHTS)), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{directory}: weights do not match the model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return model
