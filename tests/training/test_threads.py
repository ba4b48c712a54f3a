from __future__ import annotations

import pytest
import torch

from bertkit.training import threads
from bertkit.training.threads import ThreadGovernor, busy_seconds, thread_governor

# /proc/stat as Linux writes it: the aggregate line, then one per core (user nice system idle iowait
# irq softirq steal guest guest_nice), in clock ticks
STAT = """cpu  900 0 100 5000 40 0 10 0 0 0
cpu0 300 0 50 2500 20 0 5 0 0 0
cpu1 600 0 50 2500 20 0 5 0 0 0
intr 12345 0 0
ctxt 999
"""


def test_busy_seconds_counts_the_given_cores_without_idle_and_iowait():
    # cpu0: 300 + 50 + 5 busy ticks; cpu1: 600 + 50 + 5; idle and iowait left out; 100 ticks a second
    assert busy_seconds(STAT, {0}, 100.0) == pytest.approx(3.55)
    assert busy_seconds(STAT, {0, 1}, 100.0) == pytest.approx(3.55 + 6.55)
    assert busy_seconds(STAT, {7}, 100.0) == 0  # a core not listed (another cpuset) adds nothing


class FakeMachine:
    """A clock, the cores' busy seconds and this process's CPU seconds, advanced by hand."""

    def __init__(self) -> None:
        self.now = self.busy = self.own = 0.0

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.now += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)

    def governor(self, limit: int, cores: int) -> ThreadGovernor:
        return ThreadGovernor(limit, cores, lambda: self.busy, lambda: self.own, lambda: self.now)


@pytest.fixture
def threads_set(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(threads.torch, "set_num_threads", calls.append)
    return calls


def test_governor_gives_a_core_to_a_neighbour_and_takes_it_back(threads_set):
    machine = FakeMachine()
    governor = machine.governor(limit=2, cores=2)
    machine.run(3.0, own_cores=2.0, other_cores=0.0)
    assert governor.tick() == 2 and threads_set == []
    # a neighbour starts: under contention it gets about 0.7 of a core
    machine.run(3.0, own_cores=1.3, other_cores=0.7)
    assert governor.tick() == 2  # one reading is not enough
    machine.run(3.0, own_cores=1.3, other_cores=0.7)
    assert governor.tick() == 1 and threads_set == [1]
    machine.run(3.0, own_cores=1.0, other_cores=1.0)
    assert governor.tick() == 1 and threads_set == [1]
    # it stops: two quiet readings give the second thread back
    machine.run(3.0, own_cores=1.0, other_cores=0.05)
    assert governor.tick() == 1
    machine.run(3.0, own_cores=1.0, other_cores=0.05)
    assert governor.tick() == 2 and threads_set == [1, 2]


def test_the_first_reading_of_a_run_decides_alone(threads_set):
    machine = FakeMachine()
    governor = machine.governor(limit=2, cores=2)
    machine.run(1.5, own_cores=1.2, other_cores=0.8)  # the neighbour was there from the start
    assert governor.tick() == 1 and threads_set == [1]
    machine.run(1.5, own_cores=1.0, other_cores=0.0)  # later changes need two readings again
    assert governor.tick() == 1


def test_governor_reads_the_load_only_once_per_interval(threads_set):
    machine = FakeMachine()
    governor = machine.governor(limit=2, cores=2)
    for _ in range(10):  # many short steps within one interval: no reading, no change
        machine.run(threads.INTERVAL_S / 20, own_cores=0.0, other_cores=2.0)
        assert governor.tick() == 2
    assert threads_set == []


def test_governor_never_goes_below_one_thread_nor_above_the_limit(threads_set):
    machine = FakeMachine()
    governor = machine.governor(limit=4, cores=4)
    for _ in range(3):
        machine.run(3.0, own_cores=0.5, other_cores=3.9)  # a machine full of other work
        governor.tick()
    assert governor.threads == 1 and threads_set == [1]
    for _ in range(3):
        machine.run(3.0, own_cores=1.0, other_cores=1.2)  # one core taken: 3 of the 4 remain
        governor.tick()
    assert governor.threads == 3
    # more threads asked for than there are cores, on an idle machine: the user's count stands
    crowded = machine.governor(limit=8, cores=2)
    for _ in range(3):
        machine.run(3.0, own_cores=2.0, other_cores=0.0)
        crowded.tick()
    assert crowded.threads == 8


def test_no_governor_when_it_is_off_or_there_is_one_thread():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert thread_governor(False, torch.device("cpu")) is None
        torch.set_num_threads(1)
        assert thread_governor(True, torch.device("cpu")) is None  # one thread has nothing to give
    finally:
        torch.set_num_threads(before)


def test_make_runtime_starts_the_governor_only_when_asked():
    from bertkit.training.runtime import make_runtime

    before = torch.get_num_threads()
    try:
        make_runtime("fp32", threads=2, adapt_threads=True)
        assert isinstance(threads._governor, ThreadGovernor) and threads._governor.limit == 2
        make_runtime("fp32", threads=2)  # a predictor loaded inside a run leaves the run's governor alone
        assert threads._governor is not None
        make_runtime("fp32", threads=2, adapt_threads=False)
        assert threads._governor is None
    finally:
        threads.start_governor(False, torch.device("cpu"))
        torch.set_num_threads(before)
