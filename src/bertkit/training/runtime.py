"""Where and how the model runs: ranks, device, matmul precision, CPU threads and seeds.

Kept apart from the loop so that resume and multi-process set-up change one place. ``Runtime.is_main``
gates every side effect (logs, saves, prints, progress bars), so that several ranks write nothing twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from bertkit.errors import BertkitError
from bertkit.training.distributed import init_process_group
from bertkit.training.threads import start_governor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run (torchrun's variables; one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" or "bf16"
    ranks: Ranks = Ranks()

    @property
    def rank(self) -> int:
        return self.ranks.rank

    @property
    def world_size(self) -> int:
        return self.ranks.world_size

    @property
    def local_rank(self) -> int:
        return self.ranks.local_rank

    @property
    def is_main(self) -> bool:
        """Whether this process writes logs, checkpoints and output (rank 0)."""
        return self.ranks.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the forward pass; master weights and optimizer stay fp32."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


def process_ranks(env: dict[str, str] | None = None) -> Ranks:
    """Read RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE as torchrun sets them."""
    env = os.environ if env is None else env

    def number(name: str, default: int) -> int:
        text = env.get(name)
        if text is None or text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise BertkitError(f"environment variable {name}: expected an integer, got {text!r}") from None

    world = number("WORLD_SIZE", 1)
    ranks = Ranks(number("RANK", 0), world, number("LOCAL_RANK", 0), number("LOCAL_WORLD_SIZE", world))
    if not (0 <= ranks.rank < ranks.world_size and 0 <= ranks.local_rank < ranks.local_world_size):
        raise BertkitError(f"inconsistent process ranks from the environment: {ranks}")
    return ranks


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 only pays where the hardware multiplies in bf16 natively (AVX-512 BF16 / AMX, or a GPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(
        getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    )


def make_runtime(precision: str = "auto", threads: int = 0, adapt_threads: bool | None = None) -> Runtime:
    """The runtime of this process: its ranks, its device (``cuda:LOCAL_RANK`` where CUDA exists),
    and, under torchrun, its place in the process group (joined here)."""
    ranks = process_ranks()
    device = torch.device(f"cuda:{ranks.local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    init_process_group(ranks.rank, ranks.world_size, device)
    if ranks.rank != 0:  # one log for the run: the other ranks say only what goes wrong
        logging.getLogger("bertkit").setLevel(logging.WARNING)
    set_threads(threads, ranks.local_world_size)
    warn_if_one_thread_each(threads, ranks, device)
    if adapt_threads is not None:  # None: leave the process's thread governor as it is
        start_governor(adapt_threads, device)
    if precision == "auto":
        precision = "bf16" if bf16_is_fast(device) else "fp32"
    if ranks.rank == 0:
        log.info("device %s, precision %s, %d CPU threads", device, precision, torch.get_num_threads())
    return Runtime(device, precision, ranks)


def warn_if_one_thread_each(threads: int, ranks: Ranks, device: torch.device) -> None:
    """torchrun sets OMP_NUM_THREADS=1 for every process it starts when there are several: on a CPU
    with more cores than processes that leaves cores idle, so say how to use them."""
    share = available_cores() // max(1, ranks.local_world_size)
    idle = device.type == "cpu" and ranks.world_size > 1 and not threads and torch.get_num_threads() < share
    if idle and ranks.rank == 0:
        log.warning(
            "each process uses %d CPU thread(s) (OMP_NUM_THREADS=%s) and could use %d: pass --threads "
            "%d or OMP_NUM_THREADS=%d (bertkit ... --nproc N sets it for you)",
            torch.get_num_threads(),
            os.environ.get("OMP_NUM_THREADS"),
            share,
            share,
            share,
        )


def available_cores() -> int:
    """The cores this process may run on, not the host's count (which containers overstate)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_count(threads: int = 0, local_world_size: int = 1, env: dict[str, str] | None = None) -> int:
    """``threads`` if set, else ``OMP_NUM_THREADS`` if set, else this process's share of the cores."""
    env = os.environ if env is None else env
    if threads > 0:
        return threads
    omp = env.get("OMP_NUM_THREADS", "")
    first = omp.split(",")[0].strip()  # OpenMP allows a list, one count per nesting level; ours is the first
    if first:
        if not first.isdigit() or int(first) < 1:
            raise BertkitError(f"OMP_NUM_THREADS must be a positive number of threads, got {omp!r}")
        return int(first)
    return max(1, available_cores() // max(1, local_world_size))


def set_threads(threads: int = 0, local_world_size: int = 1) -> None:
    torch.set_num_threads(thread_count(threads, local_world_size))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """RNG states that a resumed run must restore to continue exactly (dropout draws, augmentation)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        # as a tensor and plain numbers: torch.load(weights_only=True) refuses numpy arrays
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "gauss": [has_gauss, cached]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "numpy" in state:
        saved = state["numpy"]
        keys = saved["keys"].numpy().astype(np.uint32)
        np.random.set_state(("MT19937", keys, saved["pos"], *saved["gauss"]))
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


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl and macOS have none
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    Freed tensors leave holes in glibc's heap that later tensors of other shapes do not fill, and glibc
    keeps those pages resident: the "before" evaluation left ~300 MB under the whole of training, and
    each epoch's freed activations stayed under the dev evaluation after it. Called around every
    evaluation (not every step: pages handed back are faulted in again, which cost 8-20% of a step's
    time), it took WNUT-17's peak from 2249 to ~2130 MB (``benchmarks/README.md``).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
