"""Where and how the model runs: device, matmul precision, CPU threads and seeds.

Kept apart from the loop so that resume and multi-process set-up change one place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" or "bf16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the forward pass; master weights and optimizer stay fp32."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 only pays where the hardware multiplies in bf16 natively (AVX-512 BF16 / AMX, or a GPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(
        getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    )


def make_runtime(precision: str = "auto", threads: int = 0) -> Runtime:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        set_threads(threads)
    if precision == "auto":
        precision = "bf16" if bf16_is_fast(device) else "fp32"
    log.info("device %s, precision %s, %d CPU threads", device, precision, torch.get_num_threads())
    return Runtime(device, precision)


def set_threads(threads: int = 0) -> None:
    """Use the cores this process may run on (not the host's count, which containers overstate)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads if threads > 0 else available)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """RNG states that a resumed run must restore to continue exactly (dropout draws, mostly)."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_device(batch: dict, device: torch.device) -> dict:
    """Move the tensors of a batch; leave its bookkeeping (record ids, word slots) alone."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate without gradients, then put the model back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
