"""fit(): the one training loop, for every task family.

AdamW with warm-up and decay, gradient accumulation and clipping, length-grouped batches with dynamic
padding, evaluation on dev with early stopping, and a training state saved at each evaluation so that
``--resume`` continues exactly where the run stopped. The loop knows no task: the task encodes,
collates, runs the model and computes the loss.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bertkit.config import TrainConfig
from bertkit.data.batching import feature_length, length_grouped_batches
from bertkit.tasks.base import Task
from bertkit.training.checkpoint import load_training_state, save_training_state
from bertkit.training.optim import make_optimizer, make_scheduler
from bertkit.training.runtime import Runtime, rng_state, set_rng_state, to_device

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Where training stands; saved with every checkpoint so a resumed run skips consumed batches."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    examples: int = 0
    train_seconds: float = 0.0
    best_metric: float | None = None
    best_step: int = 0
    evals_without_gain: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


class TrainLog:
    """Training log as JSON lines, one event per line, flushed as it goes."""

    def __init__(self, path: Path | None):
        self.file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (lives with the run)

    def write(self, event: str, **data: Any) -> None:
        if self.file:
            self.file.write(json.dumps({"event": event, **data}) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


def fit(
    model: torch.nn.Module,
    task: Task,
    train: Sequence[Any],
    cfg: TrainConfig,
    runtime: Runtime,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    on_best: Callable[[torch.nn.Module], None] | None = None,
    checkpoint_dir: Path | None = None,
    train_log: TrainLog | None = None,
    on_eval: Callable[[int, dict], None] | None = None,
) -> LoopState:
    """Train ``model`` on the encoded ``train`` features; return the final loop state.

    ``evaluate`` scores the model on dev (its ``task.main_metric`` picks the best step); ``on_best``
    is called whenever that improves, to save the model; ``on_eval(step, metrics)`` after every
    evaluation (hyper-parameter search reports and prunes there).
    """
    train_log = train_log or TrainLog(None)
    model.to(runtime.device).train()
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    lengths = [feature_length(f) for f in train]
    batches_per_epoch = math.ceil(len(train) / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    scheduler = make_scheduler(optimizer, total_steps, cfg.warmup_ratio)
    state = LoopState()
    if cfg.resume:
        state = resume(Path(cfg.resume), model, optimizer, scheduler)
    trainable = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total_steps, initial=state.step, desc="train", unit="step", dynamic_ncols=True)
    smoothed = None
    while state.step < total_steps and not state.stopped_early:
        batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed + state.epoch)
        started = time.perf_counter()
        for i in range(state.batch_in_epoch, len(batches)):
            batch = to_device(task.collate([train[j] for j in batches[i]]), runtime.device)
            with runtime.autocast():
                loss = task.loss(task.forward(model, batch), batch)
            (loss / cfg.grad_accum).backward()
            state.examples += len(batches[i])
            state.batch_in_epoch = i + 1
            smoothed = loss.item() if smoothed is None else 0.9 * smoothed + 0.1 * loss.item()
            if (i + 1) % cfg.grad_accum and i + 1 < len(batches):
                continue
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.train_seconds += time.perf_counter() - started
            started = time.perf_counter()
            report_step(bar, train_log, state, smoothed, scheduler.get_last_lr()[0], cfg.log_every)
            end_of_epoch = i + 1 == len(batches)
            if end_of_epoch:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if evaluate and eval_due(cfg, state.step, end_of_epoch, total_steps):
                run_eval(model, task, evaluate, on_best, cfg, state, train_log)
                if on_eval:
                    on_eval(state.step, state.history[-1])
                if checkpoint_dir:
                    save_training_state(checkpoint_dir, model, training_state(state, optimizer, scheduler))
                started = time.perf_counter()
            if state.step >= total_steps or state.stopped_early:
                break
    bar.close()
    log.info(
        "trained %d steps on %d examples in %.1fs (%.1f examples/s)",
        state.step,
        state.examples,
        state.train_seconds,
        state.examples / max(state.train_seconds, 1e-9),
    )
    return state


def eval_due(cfg: TrainConfig, step: int, end_of_epoch: bool, total_steps: int) -> bool:
    if step >= total_steps:
        return True
    return step % cfg.eval_every == 0 if cfg.eval_every > 0 else end_of_epoch


def report_step(bar: tqdm, train_log: TrainLog, state: LoopState, loss: float, lr: float, every: int) -> None:
    speed = state.examples / max(state.train_seconds, 1e-9)
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", ex_s=f"{speed:.0f}", refresh=False)
    if state.step % every == 0 or state.step == 1:
        train_log.write("step", step=state.step, epoch=state.epoch, loss=loss, lr=lr, examples_per_s=speed)


def run_eval(
    model: torch.nn.Module,
    task: Task,
    evaluate: Callable,
    on_best: Callable | None,
    cfg: TrainConfig,
    state: LoopState,
    train_log: TrainLog,
) -> None:
    """Score on dev; keep the best model; count evaluations without improvement for early stopping."""
    metrics = evaluate(model)
    model.train()
    score = metrics[task.main_metric]
    improved = state.best_metric is None or score > state.best_metric
    if improved:
        state.best_metric, state.best_step, state.evals_without_gain = score, state.step, 0
        if on_best:
            on_best(model)
    else:
        state.evals_without_gain += 1
        state.stopped_early = 0 < cfg.patience <= state.evals_without_gain
    summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    state.history.append({"step": state.step, **summary})
    train_log.write("eval", step=state.step, epoch=state.epoch, improved=improved, **summary)
    tqdm.write(f"step {state.step}: dev {task.main_metric} {score:.4f}" + (" (best)" if improved else ""))
    if state.stopped_early:
        log.info("no dev improvement in %d evaluations: stopping early at step %d", cfg.patience, state.step)


def training_state(state: LoopState, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict:
    return {
        "loop": asdict(state),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
    }


def resume(
    ckpt_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> LoopState:
    saved = load_training_state(ckpt_dir, model)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    state = LoopState(**saved["loop"])
    log.info(
        "resumed from %s at step %d (epoch %d, batch %d)",
        ckpt_dir,
        state.step,
        state.epoch,
        state.batch_in_epoch,
    )
    return state
