"""Benchmark: LoRA (``--peft lora``) against full fine-tuning, on SST-2 (a seeded train subset, scored on
the full dev set) and WNUT-17 (train, dev for selection, scored on test), several seeds each.

Every run is its own ``bertkit finetune`` process; the table gives per mode the quality (mean ± std
over seeds), trainable parameters, seconds per optimizer step and the peak resident memory of the
process (``wait4``'s ``ru_maxrss``), then LoRA's difference and ratios against full fine-tuning.
Both modes run the same batch size; each has its own learning rate (LoRA wants one about ten times
higher), and LoRA may have its own warm-up share and epochs (``--warmup-lora``, ``--epochs-lora``), all
printed with the figures. ``--modes lora --reference OLD.json`` runs LoRA only and compares it with the
full fine-tuning rows of an earlier ``--out`` file (same data and seeds; checked).

    python benchmarks/lora_vs_full.py --data sst2 --seeds 1,2,3 --out runs/lora-sst2.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import cpu_name, matmul_peak_gflops, minilm_dir

DATA = Path(os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
# data set -> (task, metric, defaults); the files are read by bertkit's own readers
SETS = {
    "sst2": ("classify", "accuracy", {"epochs": 3, "lr_full": 5e-5, "lr_lora": 1e-3, "batch_size": 32}),
    "wnut17": ("ner", "f1", {"epochs": 3, "lr_full": 1e-4, "lr_lora": 1e-3, "batch_size": 32}),
}
TRAINABLE = re.compile(r"([\d,]+) of ([\d,]+) parameters trainable|([\d,]+) parameters, ([\d,]+) trainable")


def sst2_subset(size: int, seed: int, folder: Path) -> Path:
    """A seeded sample of SST-2 train as a TSV with its header (split on TAB: GLUE has stray quotes)."""
    lines = (DATA / "glue_sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")
    rows = [line for line in lines[1:] if line.strip()]
    out = folder / f"sst2-train-{size}-{seed}.tsv"
    out.write_text("\n".join([lines[0], *random.Random(seed).sample(rows, size)]) + "\n", encoding="utf-8")
    return out


def data_flags(name: str, args: argparse.Namespace, folder: Path) -> list[str]:
    if name == "sst2":
        train = sst2_subset(args.train_size, args.sample_seed, folder)
        dev = DATA / "glue_sst2" / "dev.tsv"
        return ["--train", str(train), "--dev", str(dev), "--text-column", "sentence"]
    return ["--dataset", "wnut17", "--data-dir", str(DATA)]


def run(name: str, mode: str, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    """One fine-tuning process; its quality, trainable parameters, step time and peak memory."""
    task, metric, _ = SETS[name]
    out = folder / f"{name}-{mode}-{seed}"
    lr = args.lr_lora if mode == "lora" else args.lr_full
    epochs = args.epochs_lora if mode == "lora" else args.epochs
    cmd = [
        sys.executable, "-m", "bertkit.cli.app", "finetune", task, "--model", args.model,
        *data_flags(name, args, folder), "--out", str(out), "--overwrite",
        "--epochs", str(epochs), "--lr", str(lr), "--batch-size", str(args.batch_size),
        "--max-length", "128", "--seed", str(seed), "--output.plot", "false",
        "--output.checkpoint", "false",
    ]  # fmt: skip
    if mode == "lora":
        cmd += ["--peft", "lora", "--lora.r", str(args.r), "--lora.alpha", str(2 * args.r)]
        cmd += ["--lora.targets", args.targets]
        if args.warmup_lora is not None:  # otherwise bertkit's default share
            cmd += ["--train.warmup_ratio", str(args.warmup_lora)]
    log_path = out.with_suffix(".log")
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    text = log_path.read_text(encoding="utf-8")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{text[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    end = [e for e in map(json.loads, (out / "train_log.jsonl").open()) if e["event"] == "train_end"][-1]
    found = TRAINABLE.findall(text)[-1]
    trainable, total = (found[0], found[1]) if found[0] else (found[3], found[2])
    return {
        "data": name,
        "mode": mode,
        "seed": seed,
        "lr": lr,
        "epochs": epochs,
        "warmup_ratio": args.warmup_lora if mode == "lora" else None,
        metric: metrics["after"][metric],
        "split": metrics["split"],
        "trainable": int(trainable.replace(",", "")),
        "total": int(total.replace(",", "")),
        "seconds_per_step": end["train_seconds"] / max(end["steps"], 1),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "adapter_files": sorted(p.name for p in (out / "adapter").iterdir()) if mode == "lora" else [],
    }


def summary(rows: list[dict], metric: str) -> dict:
    out = {}
    for mode in ("full", "lora"):
        rs = [r for r in rows if r["mode"] == mode]
        values = [r[metric] for r in rs]
        out[mode] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "trainable": rs[0]["trainable"],
            "total": rs[0]["total"],
            "seconds_per_step": statistics.fmean(r["seconds_per_step"] for r in rs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "lr": rs[0]["lr"],
            "epochs": rs[0].get("epochs"),
        }
    full, lora = out["full"], out["lora"]
    out["lora_minus_full_points"] = 100 * (lora["mean"] - full["mean"])
    out["step_time_ratio"] = lora["seconds_per_step"] / full["seconds_per_step"]
    out["memory_ratio"] = lora["peak_rss_mb"] / full["peak_rss_mb"]
    out["trainable_ratio"] = lora["trainable"] / full["trainable"]
    return out


def report(name: str, rows: list[dict], s: dict, machine: dict, args: argparse.Namespace) -> None:
    _, metric, _ = SETS[name]
    warmup = "bertkit's default" if args.warmup_lora is None else args.warmup_lora
    print(f"\n{name}: {metric} on {rows[0]['split']}; full {args.epochs} epochs, LoRA {args.epochs_lora} "
          f"epochs (warm-up share {warmup}), batch {args.batch_size}; "
          f"LoRA r={args.r} alpha={2 * args.r} on {args.targets}")  # fmt: skip
    print(
        f"CPU: {machine['cpu']}; matmul peak "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in machine["peak"].items())
    )
    for r in rows:
        origin = " (reference)" if r.get("reference") else ""
        print(f"  {r['mode']:<5} seed {r['seed']}: {metric} {r[metric]:.4f}{origin}")
    for mode in ("full", "lora"):
        m = s[mode]
        print(
            f"{mode:<5} lr {m['lr']:g}: {metric} {m['mean']:.4f} ± {m['std']:.4f}; trainable "
            f"{m['trainable']:,} of {m['total']:,}; {m['seconds_per_step']:.3f} s/step; "
            f"peak {m['peak_rss_mb']:.0f} MB"
        )
    print(
        f"LoRA - full: {s['lora_minus_full_points']:+.2f} points; trainable x{s['trainable_ratio']:.4f}; "
        f"step time x{s['step_time_ratio']:.2f}; peak memory x{s['memory_ratio']:.2f}"
    )


def reference_rows(path: Path | None, name: str, seeds: list[int], modes: list[str]) -> list[dict]:
    """The rows of ``modes`` for ``seeds`` from an earlier ``--out`` file, marked as the reference."""
    if not modes:
        return []
    if path is None:
        raise SystemExit(f"--modes leaves out {','.join(modes)}: give --reference OLD.json for it")
    old = json.loads(path.read_text())["runs"]
    rows = [{**r, "reference": str(path)} for r in old if r["mode"] in modes and r["data"] == name]
    have = {(r["mode"], r["seed"]) for r in rows}
    missing = [f"{m} seed {s}" for m in modes for s in seeds if (m, s) not in have]
    if missing:
        raise SystemExit(f"{path}: no {', '.join(missing)} for {name}")
    return [r for r in rows if r["seed"] in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=sorted(SETS), default="sst2")
    parser.add_argument("--model", default=None, help="encoder (default: the offline MiniLM)")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--train-size", type=int, default=4000, help="SST-2 training sentences sampled")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--epochs-lora", type=float, help="LoRA's epochs (default: --epochs)")
    parser.add_argument("--warmup-lora", type=float, help="LoRA's warm-up share (default: bertkit's)")
    parser.add_argument("--lr-full", type=float)
    parser.add_argument("--lr-lora", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--targets", default="query,value")
    parser.add_argument("--modes", default="full,lora", help="which modes to run")
    parser.add_argument("--reference", type=Path, help="an earlier --out: rows of the modes not run")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for key, value in SETS[args.data][2].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.epochs_lora = args.epochs if args.epochs_lora is None else args.epochs_lora
    args.model = args.model or minilm_dir()
    machine = {"cpu": cpu_name(), "peak": matmul_peak_gflops()}
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="lora_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    modes = args.modes.split(",")
    reused = reference_rows(args.reference, args.data, seeds, [m for m in ("full", "lora") if m not in modes])
    rows = reused + [run(args.data, mode, seed, args, folder) for seed in seeds for mode in modes]
    s = summary(rows, SETS[args.data][1])
    report(args.data, rows, s, machine, args)
    if args.out:
        settings = {k: str(v) for k, v in vars(args).items()}
        result = {"machine": machine, "args": settings, "runs": rows, "summary": s}
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
