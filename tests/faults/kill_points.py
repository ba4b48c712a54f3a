"""Run the real ``bertkit`` CLI in a child process and kill it with a real signal at a chosen moment.

The child is forked from the test process, so it starts with bertkit already imported (a fresh
interpreter spends 8 s importing torch and transformers on a busy 2-core machine). It arms one kill
point by wrapping a library or bertkit function, then calls ``bertkit.cli.app.main``; nothing of the
kind lives in bertkit itself. A kill point fires on its ``nth`` call made while ``OUT/checkpoint``
exists, so that the run always has a checkpoint to resume from.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import transformers.modeling_utils

import bertkit.atomic
from bertkit.cli.app import main
from bertkit.tasks.ner.task import NerTask
from bertkit.training import loop


@dataclass
class Trigger:
    """Counts the calls made (once a checkpoint exists, unless ``anytime``); fires on the nth."""

    out: Path
    nth: int
    signum: int
    anytime: bool = False
    calls: int = 0

    def due(self) -> bool:
        if not (self.anytime or (self.out / "checkpoint").is_dir()):
            return False
        self.calls += 1
        return self.calls == self.nth

    def fire(self, writing: str | Path | None = None) -> None:
        """Send the signal; a SIGKILL while ``writing`` a file first cuts that file to half its bytes,
        as a kill in the middle of the write would leave it (a SIGTERM lets the write finish)."""
        if writing is not None and self.signum == signal.SIGKILL:
            torn(writing)
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), self.signum)  # SIGKILL never returns; SIGTERM goes on to the handler


def torn(path: str | Path) -> None:
    """Cut a file to half its bytes: what a kill in the middle of writing it leaves."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def wrap(owner: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    setattr(owner, name, make(getattr(owner, name)))


def arm_loss(t: Trigger) -> None:
    """Mid-step: the loss of a micro-batch is computed, its backward and the optimizer step are not."""

    def make(real):
        def loss(self, outputs, batch):
            value = real(self, outputs, batch)
            if t.due():
                t.fire()
            return value

        return loss

    wrap(NerTask, "loss", make)


def arm_evaluation(t: Trigger) -> None:
    """Mid-evaluation: a dev batch has gone through the model, the rest of dev has not."""

    def make(real):
        def forward(self, model, batch):
            out = real(self, model, batch)
            if not model.training and t.due():
                t.fire()
            return out

        return forward

    wrap(NerTask, "forward", make)


def arm_checkpoint_weights(t: Trigger) -> None:
    """Mid-checkpoint write: the checkpoint's weights file is half on disk."""

    def make(real):
        def save_file(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            if t.due():
                t.fire(writing=filename)

        return save_file

    wrap(safetensors.torch, "save_file", make)


def arm_checkpoint_state(t: Trigger) -> None:
    """Mid-checkpoint write: the weights are written, the training state is half on disk."""

    def make(real):
        def save(obj, f, *args, **kwargs):
            real(obj, f, *args, **kwargs)
            if hasattr(f, "flush") and isinstance(obj, dict) and "loop" in obj and t.due():
                f.flush()
                t.fire(writing=f.name)

        return save

    wrap(torch, "save", make)


def arm_model_save(t: Trigger) -> None:
    """Mid-model save: ``save_pretrained`` of the best model has half of its weights file on disk."""

    def make(real):
        def safe_save_file(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            if t.due():
                t.fire(writing=filename)

        return safe_save_file

    wrap(transformers.modeling_utils, "safe_save_file", make)


def arm_metrics_write(t: Trigger) -> None:
    """Mid-``metrics.json`` write: the final metrics are half written to their temporary file."""

    def make(real):
        def write_text(self, data, *args, **kwargs):
            if self.name.startswith(".metrics.json.") and t.due():
                real(self, data[: len(data) // 2], *args, **kwargs)
                t.fire()
            return real(self, data, *args, **kwargs)

        return write_text

    wrap(Path, "write_text", make)


def arm_after_checkpoint(t: Trigger) -> None:
    """Right after a checkpoint is in place, before the next step."""

    def make(real):
        def save_training_state(ckpt_dir, model, state):
            real(ckpt_dir, model, state)
            if t.due():
                t.fire()

        return save_training_state

    wrap(loop, "save_training_state", make)


def arm_between_renames(t: Trigger) -> None:
    """Mid-checkpoint swap: the old checkpoint is moved aside, the new one not yet renamed in."""

    moved_aside = []

    def make(real):
        def replace(src, dst):
            if Path(dst).name == "checkpoint" and moved_aside:
                t.fire()
            if Path(dst).name == ".checkpoint.old" and t.due():
                moved_aside.append(dst)  # fire at the next rename, the new checkpoint's
            return real(src, dst)

        return replace

    wrap(bertkit.atomic.os, "replace", make)


KILL_POINTS: dict[str, Callable[[Trigger], None]] = {
    "mid-step": arm_loss,
    "mid-evaluation": arm_evaluation,
    "mid-checkpoint-weights": arm_checkpoint_weights,
    "mid-checkpoint-state": arm_checkpoint_state,
    "between-checkpoint-renames": arm_between_renames,
    "after-checkpoint": arm_after_checkpoint,
    "mid-model-save": arm_model_save,
    "mid-metrics-write": arm_metrics_write,
}


@dataclass
class Outcome:
    """How the child ended: killed by ``signal``, or exited with ``code``; what it printed on stderr."""

    signal: int | None
    code: int | None
    stderr: str


def run_until(
    argv: list[str], point: str, nth: int, signum: int, out: Path, logs: Path, anytime: bool = False
) -> Outcome:
    """Fork, arm ``point`` in the child, run ``bertkit argv`` there, and wait for it to end."""
    logs.mkdir(parents=True, exist_ok=True)
    err_path = logs / f"{point}.stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            with open(err_path, "w", encoding="utf-8") as err:
                os.dup2(err.fileno(), 2)
                os.dup2(err.fileno(), 1)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (until _exit)
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            KILL_POINTS[point](Trigger(out, nth, signum, anytime))
            code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    stderr = err_path.read_text(encoding="utf-8")
    if os.WIFSIGNALED(status):
        return Outcome(os.WTERMSIG(status), None, stderr)
    return Outcome(None, os.WEXITSTATUS(status), stderr)
