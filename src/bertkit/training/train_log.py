"""The training log: JSON lines, one event per line, flushed as it goes.

A fresh run starts a fresh log; a resumed run first cuts the log back to the checkpoint's step, so the
log of a run that crashed and resumed reads like the log of one that never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.atomic import write_errors_named, write_text


class TrainLog:
    """Writes nothing until ``start()``; ``path=None`` writes nothing at all."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.file = None

    def start(self, resume_step: int | None = None) -> None:
        """Open for this run: truncated when fresh, cut back to ``resume_step`` when resuming."""
        if self.path is None or self.file is not None:
            return
        if resume_step is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (lives with the run)
            return
        kept = events_up_to(self.path, resume_step) if self.path.exists() else []
        write_text(self.path, "".join(json.dumps(e) + "\n" for e in kept))  # atomic: no half-cut log
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, event: str, **data: Any) -> None:
        if self.file:
            with write_errors_named(self.path, "the lines before are kept"):  # a full disk: one clear line
                self.file.write(json.dumps({"event": event, **data}) + "\n")
                self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None


def events_up_to(path: Path, step: int) -> list[dict]:
    """The events of ``path`` at or before ``step``; no ``train_end``, no torn last line."""
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when the run died
        if event.get("event") == "train_end" or event.get("step", 0) > step:
            continue
        kept.append(event)
    return kept
