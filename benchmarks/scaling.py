"""Benchmark: one process against N processes (torchrun, gloo) on this machine, the same global batch.

Both runs fine-tune MiniLM on a seeded SST-2 train subset (scored on the full dev set) with the same
global batch: one process with ``--batch-size B`` and all the cores, or ``--nproc N`` with B / N per
process and cores / N threads each. The table gives examples/s over the training steps, the wall time
of the whole command, the dev accuracy, and the ratios. On a machine with few cores N processes mostly
split the same cores; what the run shows there is the cost of the gradient all-reduce, and that the
quality is the same.

    python benchmarks/scaling.py --nproc 2 --seeds 1,2 --out runs/scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import cpu_name, matmul_peak_gflops, minilm_dir
from lora_vs_full import sst2_subset

DATA = Path(os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))


def run(procs: int, seed: int, args: argparse.Namespace, folder: Path, train: Path) -> dict:
    """One ``bertkit finetune classify`` command (with ``--nproc`` above 1); its figures."""
    out = folder / f"p{procs}-s{seed}"
    cores = len(os.sched_getaffinity(0))
    cmd = [
        sys.executable, "-m", "bertkit.cli.app", "finetune", "classify", "--model", args.model,
        "--train", str(train), "--dev", str(DATA / "glue_sst2" / "dev.tsv"), "--text-column", "sentence",
        "--out", str(out), "--epochs", str(args.epochs), "--lr", str(args.lr),
        "--batch-size", str(args.batch_size // procs), "--max-length", "128", "--seed", str(seed),
        "--output.plot", "false", "--output.checkpoint", "false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // procs))}
    if procs > 1:
        cmd += ["--nproc", str(procs)]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    end = [e for e in map(json.loads, (out / "train_log.jsonl").open()) if e["event"] == "train_end"][-1]
    return {
        "procs": procs,
        "seed": seed,
        "threads_each": max(1, cores // procs),
        "batch_per_process": args.batch_size // procs,
        "accuracy": metrics["after"]["accuracy"],
        "train_examples_per_s": end["train_examples_per_s"],
        "steps": end["steps"],
        "wall_seconds": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="default: the bundled MiniLM")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--out", help="write the rows and the summary as JSON")
    args = parser.parse_args()
    args.model = args.model or minilm_dir()
    if args.batch_size % args.nproc:
        raise SystemExit("--batch-size must be a multiple of --nproc")
    machine = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "peak": matmul_peak_gflops()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        folder = Path(tmp)
        train = sst2_subset(args.train_size, args.sample_seed, folder)
        for seed in map(int, args.seeds.split(",")):
            for procs in (1, args.nproc):
                rows.append(run(procs, seed, args, folder, train))
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for procs in (1, args.nproc):
        rs = [r for r in rows if r["procs"] == procs]
        summary[procs] = {
            "accuracy_mean": statistics.fmean(r["accuracy"] for r in rs),
            "examples_per_s": statistics.fmean(r["train_examples_per_s"] for r in rs),
            "wall_seconds": statistics.fmean(r["wall_seconds"] for r in rs),
        }
    one, many = summary[1], summary[args.nproc]
    print(
        f"\nCPU: {machine['cpu']}, {machine['cores']} cores; matmul peak "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in machine["peak"].items())
    )
    print(f"SST-2 {args.train_size} train sentences, {args.epochs} epoch(s), global batch {args.batch_size}")
    for procs, s in summary.items():
        print(
            f"  {procs} process(es): dev accuracy {s['accuracy_mean']:.4f}, "
            f"{s['examples_per_s']:.1f} train examples/s, wall {s['wall_seconds']:.0f} s"
        )
    print(
        f"  {args.nproc} vs 1: throughput x{many['examples_per_s'] / one['examples_per_s']:.2f}, "
        f"wall x{many['wall_seconds'] / one['wall_seconds']:.2f}, "
        f"accuracy {100 * (many['accuracy_mean'] - one['accuracy_mean']):+.2f} points"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"machine": machine, "rows": rows, "summary": summary}, indent=1)
        )


if __name__ == "__main__":
    main()
