"""fit(): the one training loop, for every task family.

AdamW with warm-up and decay, gradient accumulation and clipping, length-grouped batches with dynamic
padding read from a feature source (in memory or sharded on disk), optional evaluation with early
stopping, and checkpoints (every ``save_every`` steps or at each evaluation, at the end, and on Ctrl-C
or SIGTERM) from which ``--resume`` continues exactly. The loop knows no task: the task collates, runs
the model and computes the loss. Under torchrun each global batch (``batch_size`` x world size) is
split across the ranks and DDP averages the gradients, so N processes take the steps one process
would take with an N times larger batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bertkit.config import TrainConfig
from bertkit.data.batching import EpochBatches, epoch_batches
from bertkit.data.features import FeatureSource, as_feature_source
from bertkit.errors import BertkitError
from bertkit.modeling.bf16_stream import use_bf16_stream
from bertkit.modeling.compact import CompactEmbedding, compact_embeddings, track_decay
from bertkit.modeling.dropout import use_fast_dropout
from bertkit.tasks.base import Task
from bertkit.training import distributed
from bertkit.training.checkpoint import load_training_state, save_training_state
from bertkit.training.optim import clip_gradients, make_optimizer, make_scheduler
from bertkit.training.runtime import Runtime, rng_state, set_rng_state, to_device
from bertkit.training.signals import Interrupted, StopRequest
from bertkit.training.state import LoopState, check_fingerprint
from bertkit.training.threads import give_way
from bertkit.training.train_log import TrainLog

__all__ = ["LoopState", "TrainLog", "fit"]

log = logging.getLogger(__name__)


def fit(
    model: torch.nn.Module,
    task: Task,
    train: FeatureSource | Sequence[Any],
    cfg: TrainConfig,
    runtime: Runtime,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    on_best: Callable[[torch.nn.Module], None] | None = None,
    checkpoint_dir: Path | None = None,
    train_log: TrainLog | None = None,
    on_eval: Callable[[int, dict], None] | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> LoopState:
    """Train ``model`` on the encoded ``train`` features; return the final loop state.

    ``evaluate`` scores the model on dev (its ``task.main_metric`` picks the best step); ``on_best``
    is called whenever that improves, to save the model; ``on_eval(step, metrics)`` after every
    evaluation (hyper-parameter search reports and prunes there). Without ``evaluate`` nothing is
    saved but checkpoints: the caller saves the final model (``state.best_metric`` stays None).
    ``fingerprint`` (``state.run_fingerprint``) is saved with each checkpoint; ``cfg.resume`` names a
    checkpoint directory to continue from, refused if its fingerprint or feature source differ.
    """
    source = as_feature_source(train)
    train_log = train_log or TrainLog(None)
    model.to(runtime.device).train()
    if cfg.fast_dropout and runtime.device.type == "cpu":
        use_fast_dropout(model)
    if cfg.bf16_stream and runtime.precision == "bf16":
        use_bf16_stream(model)
    # the special ids too: a collate may add [CLS]/[SEP] to features that hold the text alone
    specials = getattr(getattr(task, "tokenizer", None), "all_special_ids", [])
    compacting = (
        compact_embeddings(model, source, specials) if cfg.compact_embeddings else contextlib.nullcontext()
    )
    with compacting as compact:  # the trained nn.Embedding is back in place when fit returns
        optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
        if compact is not None:
            track_decay(optimizer, compact)
        global_batch = cfg.batch_size * runtime.world_size
        batches_per_epoch = math.ceil(len(source) / global_batch)
        if batches_per_epoch == 0:
            raise BertkitError("no training features: every training record was empty or skipped")
        total_steps = cfg.max_steps or math.ceil(cfg.epochs * math.ceil(batches_per_epoch / cfg.grad_accum))
        state = LoopState(total_steps=total_steps, source=source.fingerprint)
        start = compact.frozen.clone() if compact is not None and cfg.resume else None
        saved = load_training_state(Path(cfg.resume), model) if cfg.resume else None
        if saved is not None:
            rng = rank_rng_state(Path(cfg.resume), saved, runtime)  # refuses another number of processes
            state = resumed_state(Path(cfg.resume), saved, source, fingerprint)
            if compact is not None:
                compact.resume(start, resumed_decay(Path(cfg.resume), saved))
            if state.total_steps != total_steps:  # the schedule is the checkpoint's, not a recomputed one
                log.warning(
                    "resuming a run of %d steps (this config alone gives %d)", state.total_steps, total_steps
                )
        scheduler = make_scheduler(optimizer, state.total_steps, cfg.warmup_ratio)
        if saved is not None:
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            set_rng_state(rng)
        elif runtime.world_size > 1:
            torch.manual_seed(cfg.seed + runtime.rank)  # each rank its own dropout draws
        if runtime.is_main:
            train_log.start(state.step if saved is not None else None)
        run = Run(
            model, task, source, cfg, runtime, optimizer, scheduler, state, train_log, fingerprint, compact
        )
        try:
            with StopRequest() as stop:
                while state.step < state.total_steps and not state.stopped_early:
                    batches = epoch_batches(source.lengths, global_batch, cfg.seed + state.epoch)
                    for _ in range(state.batch_in_epoch, len(batches), cfg.grad_accum):
                        end_of_epoch = run.optimizer_step(batches)
                        give_way()
                        evaluated = False
                        if evaluate and eval_due(cfg, state.step, end_of_epoch, state.total_steps):
                            run_eval(model, task, evaluate, on_best, cfg, state, train_log, runtime)
                            evaluated = True
                            if on_eval:
                                on_eval(state.step, state.history[-1])
                        done = state.step >= state.total_steps or state.stopped_early
                        # a signal to one rank stops them all
                        signum = distributed.max_across(stop.signum or 0)
                        if checkpoint_dir and (save_due(cfg, state.step, evaluated) or done or signum):
                            run.save(checkpoint_dir)
                        if signum:
                            raise Interrupted(signum, state.step, checkpoint_dir)
                        if done:
                            break
        finally:
            run.bar.close()  # first: a message on why the run stopped then starts its own line
        run.close()
        distributed.barrier()  # rank 0's last saves are on disk before any rank reads them back
        return state


class Run:
    """The parts of one training run that every optimizer step touches."""

    def __init__(
        self,
        model: torch.nn.Module,
        task: Task,
        source: FeatureSource,
        cfg: TrainConfig,
        runtime: Runtime,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        state: LoopState,
        train_log: TrainLog,
        fingerprint: dict[str, Any] | None,
        compact: CompactEmbedding | None = None,  # the word embedding's trained rows, if compacted
    ):
        self.model, self.task, self.source, self.cfg, self.runtime = model, task, source, cfg, runtime
        self.optimizer, self.scheduler, self.state, self.train_log = optimizer, scheduler, state, train_log
        self.fingerprint = fingerprint
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.loss_module: torch.nn.Module | None = None  # made with the first batch (see loss_module)
        self.compact = compact
        self.bar = tqdm(
            total=state.total_steps,
            initial=state.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not runtime.is_main,
        )

    def optimizer_step(self, batches: EpochBatches) -> bool:
        """Accumulate one group of micro-batches and step; return whether the epoch ended."""
        state, cfg = self.state, self.cfg
        started = time.perf_counter()
        rank, world = self.runtime.rank, self.runtime.world_size
        group = range(state.batch_in_epoch, min(state.batch_in_epoch + cfg.grad_accum, len(batches)))
        members = [batches[i] for i in group]
        # each micro-batch's mean loss weighted by its share of the group's examples: the gradient is
        # the mean over the group's examples, also for a short group at the end of an epoch; DDP
        # averages over the ranks, hence the factor ``world``
        group_examples = sum(len(m) for m in members)
        shares = []
        for i, idx in zip(group, members):
            mine = distributed.rank_share(idx, rank, world)
            batch = (
                to_device(self.task.collate([self.source[j] for j in mine]), self.runtime.device)
                if mine
                else None
            )
            if self.loss_module is None:
                self.loss_module = distributed.loss_module(self.model, self.task, self.runtime.device, batch)
            with distributed.no_sync(self.loss_module, sync=i == group[-1]):
                with self.runtime.autocast():
                    loss = self.loss_module(batch)
                (loss * (len(mine) * world / group_examples)).backward()
            state.examples += len(idx)
            state.batch_in_epoch = i + 1
            shares.append(loss.item() * len(mine) / len(idx))  # summed over ranks: the batch's mean
        for value in distributed.sum_across(shares):
            # kept in the loop state, so that a resumed run logs the losses of one that never stopped
            before = state.smoothed_loss
            state.smoothed_loss = value if before is None else 0.9 * before + 0.1 * value
        if cfg.max_grad_norm > 0:
            clip_gradients(self.optimizer, self.trainable, cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.train_seconds += time.perf_counter() - started
        lr = self.scheduler.get_last_lr()[0]
        report_step(self.bar, self.train_log, state, state.smoothed_loss, lr, cfg.log_every)
        end_of_epoch = state.batch_in_epoch == len(batches)
        if end_of_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        return end_of_epoch

    def save(self, checkpoint_dir: Path) -> None:
        """Rank 0 writes the checkpoint, with every rank's RNG state; the others wait for it."""
        rngs = distributed.gather_objects(rng_state())
        if self.runtime.is_main:
            state = training_state(self.state, self.optimizer, self.scheduler, self.fingerprint)
            if self.compact is not None:
                state["compact_decay"] = self.compact.decay
            if self.runtime.world_size > 1:
                state.update(world_size=self.runtime.world_size, rank_rng=rngs)
            save_training_state(checkpoint_dir, self.model, state)
        distributed.barrier()

    def close(self) -> None:
        self.bar.close()
        state = self.state
        log.info(
            "trained %d steps on %d examples in %.1fs (%.1f examples/s)",
            state.step,
            state.examples,
            state.train_seconds,
            state.examples / max(state.train_seconds, 1e-9),
        )


def eval_due(cfg: TrainConfig, step: int, end_of_epoch: bool, total_steps: int) -> bool:
    if step >= total_steps:
        return True
    return step % cfg.eval_every == 0 if cfg.eval_every > 0 else end_of_epoch


def save_due(cfg: TrainConfig, step: int, evaluated: bool) -> bool:
    """Every ``save_every`` steps, or (``save_every`` 0) after each evaluation."""
    return step % cfg.save_every == 0 if cfg.save_every > 0 else evaluated


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
    runtime: Runtime,
) -> None:
    """Score on dev; keep the best model; count evaluations without improvement for early stopping.

    Every rank evaluates its share; rank 0's metrics decide for all (they are the gathered ones)."""
    metrics = distributed.from_main(evaluate(model))
    model.train()
    score = metrics[task.main_metric]
    improved = state.best_metric is None or (
        score > state.best_metric if task.greater_is_better else score < state.best_metric
    )
    if improved:
        state.best_metric, state.best_step, state.evals_without_gain = score, state.step, 0
        if on_best and runtime.is_main:
            on_best(model)
    else:
        state.evals_without_gain += 1
        state.stopped_early = 0 < cfg.patience <= state.evals_without_gain
    summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    state.history.append({"step": state.step, **summary})
    train_log.write("eval", step=state.step, epoch=state.epoch, improved=improved, **summary)
    if runtime.is_main:
        tqdm.write(f"step {state.step}: dev {task.main_metric} {score:.4f}" + (" (best)" if improved else ""))
    if state.stopped_early:
        log.info("no dev improvement in %d evaluations: stopping early at step %d", cfg.patience, state.step)


def training_state(
    state: LoopState, optimizer: torch.optim.Optimizer, scheduler: Any, fingerprint: dict | None = None
) -> dict:
    return {
        "loop": asdict(state),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "fingerprint": fingerprint,
    }


def rank_rng_state(ckpt_dir: Path, saved: dict, runtime: Runtime) -> dict:
    """This rank's RNG state from a checkpoint written by as many processes as this run has: the
    global batch and every rank's random draws depend on their number."""
    written_by = saved.get("world_size", 1)
    if written_by != runtime.world_size:
        raise BertkitError(
            f"{ckpt_dir}: the checkpoint was written by {written_by} process(es); resume it with "
            f"{written_by} (this run has {runtime.world_size}), or start a new run"
        )
    return saved["rank_rng"][runtime.rank] if "rank_rng" in saved else saved["rng"]


def resumed_decay(ckpt_dir: Path, saved: dict) -> float:
    """The weight decay that the compacted embedding's frozen rows have had in the saved run."""
    if "compact_decay" not in saved:
        raise BertkitError(
            f"{ckpt_dir}: the checkpoint was trained with the whole word-embedding matrix; resume it with "
            "--train.compact_embeddings false"
        )
    return saved["compact_decay"]


def resumed_state(
    ckpt_dir: Path, saved: dict, source: FeatureSource, fingerprint: dict[str, Any] | None
) -> LoopState:
    """The saved loop state, once the checkpoint is known to belong to this run and these features."""
    if fingerprint is not None:
        check_fingerprint(ckpt_dir, saved.get("fingerprint"), fingerprint)
    state = LoopState(**saved["loop"])
    if state.source and state.source != source.fingerprint:
        raise BertkitError(
            f"{ckpt_dir}: cannot resume, the checkpoint was written for other training features "
            f"({state.source}, these are {source.fingerprint})"
        )
    state.source = source.fingerprint
    log.info(
        "resumed from %s at step %d of %d (epoch %d, batch %d)",
        ckpt_dir,
        state.step,
        state.total_steps,
        state.epoch,
        state.batch_in_epoch,
    )
    return state
