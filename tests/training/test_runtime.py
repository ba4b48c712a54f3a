"""Tests for runtime.py: ranks from torchrun's variables, each process's share of the cores, RNG state."""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from bertkit.errors import BertkitError
from bertkit.training.runtime import (
    Ranks,
    make_runtime,
    process_ranks,
    release_free_memory,
    rng_state,
    set_rng_state,
    thread_count,
)


def test_one_plain_process_is_rank_0_of_1():
    assert process_ranks({}) == Ranks(0, 1, 0, 1)


def test_ranks_come_from_torchrun_variables():
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert process_ranks(env) == Ranks(5, 8, 1, 4)


@pytest.mark.parametrize(
    "env", [{"RANK": "two"}, {"RANK": "3", "WORLD_SIZE": "2"}, {"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "1"}]
)
def test_bad_rank_variables_are_refused(env):
    with pytest.raises(BertkitError):
        process_ranks(env)


def test_threads_given_win_then_omp_num_threads_then_a_share_of_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert thread_count(3, 1, {"OMP_NUM_THREADS": "7"}) == 3
    assert thread_count(0, 1, {"OMP_NUM_THREADS": "7"}) == 7  # --train.threads 0 no longer overrides it
    assert thread_count(0, 1, {"OMP_NUM_THREADS": "2,1"}) == 2  # OpenMP's nested form: the outer level
    assert thread_count(0, 1, {}) == cores
    assert thread_count(0, 2, {}) == max(1, cores // 2)
    assert thread_count(0, 64, {}) == 1


def test_make_runtime_is_the_main_process_on_the_cpu(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    try:
        runtime = make_runtime("fp32", threads=1)
        assert runtime.is_main and runtime.world_size == 1 and runtime.precision == "fp32"
        assert torch.get_num_threads() == 1
        # a second rank without torchrun's rendezvous address: one clear line, not a hang
        monkeypatch.setenv("RANK", "1")
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.delenv("MASTER_ADDR", raising=False)
        with pytest.raises(BertkitError, match="WORLD_SIZE is 2 but MASTER_ADDR is not set"):
            make_runtime("fp32", threads=1)
    finally:
        torch.set_num_threads(before)


def test_rng_state_restores_numpy_python_and_torch():
    saved = rng_state()
    first = (np.random.rand(3).tolist(), random.random(), torch.rand(2).tolist())
    set_rng_state(saved)
    assert (np.random.rand(3).tolist(), random.random(), torch.rand(2).tolist()) == first


@pytest.mark.parametrize("omp", ["many", "0", "-2"])
def test_a_bad_omp_num_threads_is_refused_by_name(omp):
    message = f"OMP_NUM_THREADS must be a positive number of threads, got '{omp}'"
    with pytest.raises(BertkitError, match=message):
        thread_count(0, 1, {"OMP_NUM_THREADS": omp})


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim, Linux's /proc")
def test_release_free_memory_hands_back_the_holes_that_freed_tensors_leave():
    # 64 KB tensors come from the heap (below glibc's mmap threshold); keeping every tenth alive leaves
    # holes that free() alone does not return
    tensors = [torch.ones(16 * 1024) for _ in range(3000)]  # ~190 MB
    kept = tensors[::10]
    del tensors
    held = resident_mb()
    release_free_memory()
    assert resident_mb() < held - 100
    assert all(float(t.sum()) == 16 * 1024 for t in kept)  # what is alive stays intact
