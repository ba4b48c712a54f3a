"""Several processes training one model (torchrun): the process group, the DDP-wrapped loss, and the
collectives the loop and the recipes need (sharding, gathering, broadcasting a result).

With one process every function here is the identity or a no-op, so the single-process code path is
the same code, not a branch beside it. Objects are passed between ranks with torch.distributed's
``*_object`` collectives (pickle): they only ever carry what our own processes computed, never a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from bertkit.errors import BertkitError

log = logging.getLogger(__name__)

T = TypeVar("T")

# how long a rank waits for the others at a collective (rank 0 alone saving a big model, or building
# a corpus store, is the longest wait)
TIMEOUT = datetime.timedelta(minutes=60)


def init_process_group(rank: int, world_size: int, device: torch.device) -> None:
    """Join the run's process group: nccl on GPUs, gloo on CPUs, meeting at MASTER_ADDR:MASTER_PORT."""
    if world_size == 1 or dist.is_initialized():
        return
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise BertkitError(
                f"WORLD_SIZE is {world_size} but {name} is not set: start several processes with "
                "torchrun (or bertkit ... --nproc N), which sets it"
            )
    backend = "nccl" if device.type == "cuda" else "gloo"
    extra = {"device_id": device} if device.type == "cuda" else {}
    store = rendezvous_store(rank, world_size)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=TIMEOUT, **extra)


def rendezvous_store(rank: int, world_size: int) -> dist.Store:
    """The store where the ranks exchange their addresses, with a key prefix per torchrun restart.

    Written by hand because ``env://`` is not safe across restarts: torchrun's agent keeps one store
    for the whole job, so the workers of a restart can read the addresses the killed workers left there
    and connect to ports nobody listens on any more (seen here with gloo: "connectFullMesh failed ...
    Connection refused"; pytorch/pytorch#167288 for nccl).
    """
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent hosts it
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size,
        is_master=not agent and rank == 0,
        timeout=TIMEOUT,
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT") or "0"
    return dist.PrefixStore(f"bertkit/attempt-{attempt}", store)


def close_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


class LossModule(nn.Module):
    """The task's loss as one module, so that DDP wraps the whole forward pass: tasks that call parts
    of their model (the pretraining heads, the seq2seq encoder) would otherwise bypass DDP's hooks."""

    def __init__(self, model: nn.Module, task: Any):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch: dict | None) -> torch.Tensor:
        if batch is None:
            # this rank's share of a short last batch is empty; it still joins the gradient sync
            return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        return self.task.loss(self.task.forward(self.model, batch), batch)


def loss_module(model: nn.Module, task: Any, device: torch.device, probe: dict | None = None) -> nn.Module:
    """``LossModule(model, task)``, wrapped in DistributedDataParallel when several processes train.

    BERT models carry weights that a task may never use (the pooler under a token head, the NSP head
    under MLM alone), and DDP must then be told not to wait for their gradients
    (``find_unused_parameters``, which costs a walk of the autograd graph at every step): one forward
    pass over ``probe``, a batch, finds out whether that is needed.
    """
    module = LossModule(model, task)
    if not active():
        return module
    ids = [device.index] if device.type == "cuda" else None
    unused = probe is not None and not reaches_every_weight(module, probe, device)
    unused = bool(max_across(int(unused)))  # every rank must wrap alike
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=unused)


def reaches_every_weight(module: LossModule, batch: dict, device: torch.device) -> bool:
    """Whether the loss on ``batch`` depends on every trainable weight; in eval mode and with the RNG
    state put back, so the run's random draws (and an exact resume) are untouched."""
    weights = [p for p in module.parameters() if p.requires_grad]
    was_training = module.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        module.eval()
        try:
            grads = torch.autograd.grad(module(batch), weights, allow_unused=True)
        finally:
            module.train(was_training)
    return all(g is not None for g in grads)


def no_sync(module: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce for every micro-batch of an accumulation group but the last."""
    if sync or not isinstance(module, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return module.no_sync()


def rank_share(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This rank's part of one global batch: every ``world_size``-th index, so that ranks get examples
    of similar length from a length-sorted batch, and together all of them once."""
    return list(indices[rank::world_size])


def collective_device() -> torch.device:
    """Where the tensors of a collective must live: nccl reduces GPU tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_across(values: list[float]) -> list[float]:
    """Element-wise sums over the ranks (one small all-reduce)."""
    if not active():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def max_across(value: int) -> int:
    """The largest ``value`` over the ranks."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def gather_objects(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not active():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (what was decided there: dev metrics, early stopping)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 alone, then give its result to every rank; an error there is raised on
    every rank (as a BertkitError), so no rank waits for a partner that has stopped."""
    if not active():
        return fn()
    result, error = from_main(on_rank_zero(fn))
    raise_if(error)
    return result


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then on the other ranks, which find what rank 0 built (a cache on disk:
    the tokenised corpus, the pretraining instances) instead of building it at the same time."""
    if not active():
        return fn()
    result, error = on_rank_zero(fn)
    raise_if(from_main(error))
    return result if dist.get_rank() == 0 else fn()


def on_rank_zero(fn: Callable[[], T]) -> tuple[T | None, str | None]:
    """On rank 0: ``fn``'s result, or the message of the BertkitError it raised; elsewhere nothing."""
    if dist.get_rank() != 0:
        return None, None
    try:
        return fn(), None
    except BertkitError as err:
        return None, str(err)


def raise_if(error: str | None) -> None:
    if error is not None:
        raise BertkitError(error)


def shard_records(
    records: Sequence[Any], features: Sequence[Any], rank: int, world_size: int
) -> tuple[list[Any], list[Any]]:
    """Every ``world_size``-th record, from ``rank`` on, with the features (windows) of those records,
    their ``record`` numbers renumbered into the shard: evaluation splits by record, never by window,
    so each record's windows are decoded together."""
    mine = list(records[rank::world_size])
    renumbered = [
        dataclasses.replace(f, record=f.record // world_size)
        for f in features
        if f.record % world_size == rank
    ]
    return mine, renumbered


def interleave(shards: list[list[T]]) -> list[T]:
    """The inverse of taking every ``len(shards)``-th item: shard ``r`` holds items ``r, r + W, ...``."""
    world = len(shards)
    total = sum(len(s) for s in shards)
    return [shards[i % world][i // world] for i in range(total)]
