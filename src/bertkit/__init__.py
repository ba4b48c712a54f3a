"""bertkit: from raw text and a few labelled examples to a fine-tuned, evaluated BERT model."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load(model_dir: str, **kwargs: Any) -> Any:
    """A fine-tuned model directory, ready to ``.predict(["Some text ..."])`` (entities with offsets)."""
    from bertkit.inference.predictor import load as load_predictor

    return load_predictor(model_dir, **kwargs)
