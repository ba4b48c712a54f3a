"""The output directory of a training run: new, replaced with ``--overwrite``, or continued with
``--resume``; and the checkpoint a resume starts from, checked against the run's fingerprint."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bertkit.config import RunConfig
from bertkit.errors import BertkitError
from bertkit.training.checkpoint import STATE_FILE, clean_orphans, has_checkpoint, read_training_state
from bertkit.training.state import check_fingerprint

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
# files only a bertkit run writes: --overwrite empties a directory that has one of them, no other
RUN_FILES = ("run.yaml", "train_log.jsonl", "metrics.json", CHECKPOINT)


def require_out_dir(cfg: RunConfig) -> Path:
    """The output directory, created (``tune`` keeps its trials there; ``finetune`` uses prepare_out_dir)."""
    if not cfg.output.dir:
        raise BertkitError("no output directory: pass --out DIR")
    out = Path(cfg.output.dir)
    if out.exists() and not out.is_dir():
        raise BertkitError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def prepare_out_dir(cfg: RunConfig) -> Path:
    """The run's directory: ``--resume DIR`` continues the run in DIR (``--out`` is DIR or omitted);
    otherwise ``--out`` must be new or empty, or hold an earlier run and ``--overwrite`` be given, which
    removes everything in it. What killed writers left behind is cleaned up either way."""
    resume = cfg.train.resume
    if resume is not None:
        if cfg.output.overwrite:
            raise BertkitError("--resume continues a run and --overwrite removes it: pass one of them")
        if cfg.output.dir and Path(cfg.output.dir).resolve() != Path(resume).resolve():
            raise BertkitError(
                f"--resume {resume} continues the run in {resume}; --out must be that directory or "
                f"omitted, got --out {cfg.output.dir}"
            )
        if not Path(resume).is_dir():
            raise BertkitError(f"--resume {resume}: no training state to resume from (no such directory)")
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=resume))
    out = Path(cfg.output.dir) if cfg.output.dir else None
    if out is not None and out.exists() and not out.is_dir():
        raise BertkitError(f"--out {out}: exists and is not a directory")
    if out is not None and out.is_dir():
        clean_orphans(out)
        if resume is None and any(out.iterdir()):
            start_over(out, cfg.output.overwrite)
    return require_out_dir(cfg)


def start_over(out: Path, overwrite: bool) -> None:
    """Empty a directory that holds an earlier run, when asked to; refuse anything else."""
    if not overwrite:
        raise BertkitError(
            f"--out {out} is not empty; pass --overwrite to replace the run in it, --resume {out} to "
            "continue it, or another --out"
        )
    if not any((out / name).exists() for name in RUN_FILES):
        raise BertkitError(
            f"--out {out} is not empty and holds no bertkit run (no {', '.join(RUN_FILES)}); "
            "--overwrite only replaces a run, so choose another --out"
        )
    log.warning("--overwrite: removing the earlier run in %s", out)
    for path in out.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def elastic_restart(cfg: RunConfig) -> RunConfig:
    """After torchrun restarted the workers (``--max-restarts``): continue from the run's own last
    checkpoint, or start the run over when none was written yet (the directory then holds only what
    this run's first attempt wrote: a used one was refused at that attempt)."""
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0) == 0:
        return cfg
    where = cfg.train.resume or cfg.output.dir
    if not where:
        return cfg
    out = Path(where)
    if has_checkpoint(out / CHECKPOINT):
        log.warning("restarted by torchrun: resuming from %s", out / CHECKPOINT)
        train = dataclasses.replace(cfg.train, resume=str(out))
        return dataclasses.replace(cfg, train=train, output=dataclasses.replace(cfg.output, overwrite=False))
    log.warning("restarted by torchrun before the first checkpoint: starting the run in %s over", out)
    output = dataclasses.replace(cfg.output, dir=str(out), overwrite=True)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=None), output=output)


def checkpoint_to_resume(cfg: RunConfig, out: Path, fingerprint: dict[str, Any]) -> str | None:
    """``--resume DIR``: the checkpoint in DIR/checkpoint, checked against this run's fingerprint."""
    if cfg.train.resume is None:
        return None
    ckpt = out / CHECKPOINT
    if not has_checkpoint(ckpt):
        raise BertkitError(f"{cfg.train.resume}: no training state to resume from (no {ckpt}/{STATE_FILE})")
    check_fingerprint(ckpt, read_training_state(ckpt, mmap=True).get("fingerprint"), fingerprint)
    return str(ckpt)


def previous_metrics(out: Path) -> dict:
    path = out / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


class ScoresByStep:
    """The evaluation given to ``fit`` (dev; pretraining's held-out documents), keeping each
    evaluation's full metrics by step (``noted`` is fit's ``on_eval``: it files the latest metrics under
    their step, then calls the caller's ``on_eval``). Every rank keeps them, so every rank takes the
    same decision on reusing them."""

    def __init__(self, evaluate: Callable[[Any], dict], on_eval: Callable[[int, dict], None] | None):
        self.evaluate, self.on_eval = evaluate, on_eval
        self.latest: dict = {}
        self.by_step: dict[int, dict] = {}

    def __call__(self, model: Any) -> dict:
        self.latest = self.evaluate(model)
        return self.latest

    def noted(self, step: int, summary: dict) -> None:
        self.by_step[step] = self.latest
        if self.on_eval:
            self.on_eval(step, summary)
