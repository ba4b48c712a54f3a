"""CPU threads that give way: fewer while other processes keep this process's cores busy, more again
when they stop.

torch's OpenMP threads spin while they wait for each other. When another process holds one of the
cores, every parallel region waits for the thread the scheduler took away, and a training run drops to
a quarter of what it does alone (half its fair share; ``benchmarks/contention.py``). One thread fewer
avoids the wait and keeps more than the fair share, while spinning stays the fastest choice on an idle
machine, so the thread count follows the load instead of fixing one wait policy for both cases.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

INTERVAL_S = 1.0  # one load reading per this many seconds of training; reading costs microseconds
# A change needs this many readings in a row that ask for it (no flapping); the first reading of a
# run decides alone, so that a short run beside a busy neighbour does not spend seconds spinning.
AGREEING_READINGS = 2


def busy_seconds(stat_text: str, cores: set[int], ticks_per_s: float) -> float:
    """CPU seconds that ``cores`` spent busy (all but idle and iowait) since boot, from /proc/stat."""
    total = 0
    for line in stat_text.splitlines():
        name, _, fields = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cores:
            continue
        values = [int(v) for v in fields.split()]
        # user nice system idle iowait irq softirq steal (guest time is already counted in user)
        total += sum(values[:8]) - values[3] - values[4]
    return total / ticks_per_s


def proc_stat_reader(cores: set[int]) -> Callable[[], float] | None:
    """A function giving the busy seconds of ``cores``, or None where /proc/stat cannot tell."""
    path = Path("/proc/stat")
    try:
        ticks = float(os.sysconf("SC_CLK_TCK"))
        if busy_seconds(path.read_text(), cores, ticks) <= 0:
            return None
    except (OSError, ValueError, IndexError):
        return None
    return lambda: busy_seconds(path.read_text(), cores, ticks)


class ThreadGovernor:
    """Call ``tick()`` once per training step; every ``INTERVAL_S`` it measures how many of this
    process's cores other processes keep busy and sets torch's thread count to the cores left (never
    above ``limit``, never below 1)."""

    def __init__(
        self,
        limit: int,
        cores: int,
        busy: Callable[[], float],
        own_cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.cores = limit, cores
        self.busy, self.own_cpu, self.clock = busy, own_cpu, clock
        self.last = (clock(), busy(), own_cpu())
        self.pending, self.agreeing, self.readings = limit, 0, 0
        self.threads = limit

    def tick(self) -> int:
        """The thread count in force after this step's reading (if one was due)."""
        now = self.clock()
        if now - self.last[0] < INTERVAL_S:
            return self.threads
        busy, own = self.busy(), self.own_cpu()
        elapsed, others = now - self.last[0], (busy - self.last[1]) - (own - self.last[2])
        self.last = (now, busy, own)
        taken = int(max(0.0, others / elapsed) + 0.5)  # a core counts as taken when it is busy half the time
        # with no neighbour, the limit stands even where the user asked for more threads than cores
        wanted = self.limit if not taken else max(1, min(self.limit, self.cores - taken))
        self.agreeing = self.agreeing + 1 if wanted == self.pending else 1
        self.pending, self.readings = wanted, self.readings + 1
        settled = self.agreeing >= AGREEING_READINGS or self.readings == 1
        if wanted != self.threads and settled:
            log.info(
                "other processes keep %.1f of %d cores busy: %d CPU thread(s) from now on "
                "(--train.adapt_threads false keeps %d)",
                others / elapsed,
                self.cores,
                wanted,
                self.limit,
            )
            torch.set_num_threads(wanted)
            self.threads = wanted
        return self.threads


def thread_governor(enabled: bool, device: torch.device) -> ThreadGovernor | None:
    """The governor for a CPU run with more than one thread, where /proc/stat is readable; else None."""
    limit = torch.get_num_threads()
    if not enabled or device.type != "cpu" or limit < 2 or not hasattr(os, "sched_getaffinity"):
        return None
    cores = os.sched_getaffinity(0)
    reader = proc_stat_reader(cores)
    return None if reader is None else ThreadGovernor(limit, len(cores), reader)


# One per process, like torch's thread count that it sets: started with the runtime, so that the first
# reading covers the set-up, and ticked by every training step and evaluation batch.
_governor: ThreadGovernor | None = None


def start_governor(enabled: bool, device: torch.device) -> None:
    global _governor
    _governor = thread_governor(enabled, device)


def give_way() -> None:
    """Let the process's governor (if any) take a reading when one is due."""
    if _governor is not None:
        _governor.tick()
