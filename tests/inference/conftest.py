"""What the serving tests share: a tiny NER model that has learnt the synthetic pattern, so that it
finds entities the same way every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ner_command

from bertkit.cli.app import main

QUICK = ["--epochs", "6", "--lr", "5e-3", "--batch-size", "16", "--max-length", "16", "--stride", "4"]


@pytest.fixture(scope="session")
def ner_model(tiny_bert, synthetic_ner, tmp_path_factory) -> Path:
    """Fine-tuned for a few seconds: at this learning rate any seed learns the pattern (see test_loop)."""
    out = tmp_path_factory.mktemp("serve_ner") / "model"
    assert main(ner_command(tiny_bert, synthetic_ner, out, *QUICK, test=False)) == 0
    return out
