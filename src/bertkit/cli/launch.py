"""``bertkit finetune|pretrain ... --nproc N``: the same command run by torchrun as N processes on this
machine, each with its share of the cores (torchrun alone would give each process one thread)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bertkit.errors import BertkitError

FLAG = "--nproc"


def add_nproc_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        FLAG,
        type=int,
        default=1,
        metavar="N",
        help="train with N processes on this machine (torchrun --standalone --nproc-per-node N); "
        "for several machines run torchrun yourself: see docs/distributed.md",
    )


def wants_launch(args: argparse.Namespace) -> bool:
    """Whether to start torchrun: ``--nproc`` above 1 and not already one of torchrun's processes."""
    n = getattr(args, "nproc", 1)
    if n < 1:
        raise BertkitError(f"--nproc must be at least 1, got {n}")
    return n > 1 and "WORLD_SIZE" not in os.environ


def launch(argv: list[str], nproc: int) -> int:
    """Run ``bertkit ARGV`` (without ``--nproc``) under torchrun; return its exit code."""
    env = dict(os.environ)
    if not env.get("OMP_NUM_THREADS"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        env["OMP_NUM_THREADS"] = str(max(1, cores // nproc))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "bertkit",
        *without_nproc(argv),
    ]
    return subprocess.call(command, env=env)


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` less ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == FLAG:
            skip = True
        elif not arg.startswith(FLAG + "="):
            out.append(arg)
    return out
