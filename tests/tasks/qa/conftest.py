"""Fixtures of the QA tests (the data they are made of: qa_data.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tasks.qa.qa_data import make_qa_bert, marker_question, write_jsonl, write_squad


@pytest.fixture(scope="session")
def qa_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-hidden random BERT with a WordPiece vocabulary of the synthetic words."""
    return make_qa_bert(tmp_path_factory.mktemp("qa_bert"))


@pytest.fixture(scope="session")
def marker_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train (SQuAD JSON), dev (SQuAD JSON) and test (JSON lines) files of the marker task."""
    folder = tmp_path_factory.mktemp("marker_qa")
    rng = random.Random(5)
    splits = {"train": 400, "dev": 60, "test": 60}
    questions = {s: [marker_question(rng, f"{s}-{i}") for i in range(n)] for s, n in splits.items()}
    return {
        "train": write_squad(folder / "train.json", questions["train"]),
        "dev": write_squad(folder / "dev.json", questions["dev"]),
        "test": write_jsonl(folder / "test.jsonl", questions["test"]),
    }
