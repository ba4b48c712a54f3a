"""Predictions in the official SQuAD format: one JSON object ``{question_id: answer_text}``.

The official evaluation scripts read this file as it is; "" is the answer "no answer" (SQuAD v2.0).
Answers are gathered as they arrive and the file is written, atomically, once every question has one.
"""

from __future__ import annotations

from typing import Any

from bertkit.atomic import write_json
from bertkit.tasks.qa.decoding import QaPrediction


class SquadPredictionWriter:
    def __init__(self, out: str):
        self.out = out
        self.answers: dict[str, str] = {}

    def __enter__(self) -> SquadPredictionWriter:
        return self

    def write(self, record: Any, prediction: QaPrediction) -> None:
        self.answers[record.id] = prediction.text

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            write_json(self.out, self.answers)
