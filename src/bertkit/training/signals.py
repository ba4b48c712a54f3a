"""Ctrl-C and SIGTERM during training: finish the current step, save a checkpoint, then stop.

The first signal only asks the loop to stop at the next optimizer-step boundary; a second one acts at
once (the handlers are back to the previous ones by then), for when the step itself hangs.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal, after saving a checkpoint at ``step`` in ``checkpoint`` (if any)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        name = signal.Signals(signum).name
        if checkpoint is None:
            super().__init__(f"stopped by {name} at step {step}; no checkpoint kept (checkpoints are off)")
        else:
            super().__init__(
                f"stopped by {name} at step {step}; the training state is saved in {checkpoint}; "
                f"continue with the same command and --resume {checkpoint.parent}"
            )


class StopRequest:
    """Context manager: catches SIGINT/SIGTERM into ``signum`` while the block runs (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self.restore()  # a second signal is not caught: it stops the run at once

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __exit__(self, *exc: object) -> None:
        self.restore()
