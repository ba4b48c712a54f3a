"""The uninterrupted reference of the tiny run that every fault test interrupts (``run_checks.RUN``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.run_checks import run_args

from bertkit.cli.app import main


@pytest.fixture(scope="session")
def reference(tiny_bert, synthetic_ner, tmp_path_factory) -> Path:
    """The run, uninterrupted."""
    out = tmp_path_factory.mktemp("faults_reference") / "run"
    assert main(run_args(tiny_bert, synthetic_ner, out)) == 0
    return out
