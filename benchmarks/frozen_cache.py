"""Benchmark: frozen-layer caching (``--model.freeze_embeddings true --model.freeze_layers K``).

Three ``bertkit finetune`` runs of MiniLM on WNUT-17 (or an SST-2 subset), each the same but for how
the frozen part runs: cached (the default), uncached without dropout there (what the cache computes:
the same weights), and uncached with dropout there (what freezing does in the Hugging Face Trainer,
where a frozen layer still runs, with its dropout, at every step). Prints the training seconds, the
wall time and the quality of each, and the ratios against the cached run.

    python benchmarks/frozen_cache.py --data wnut17 --freeze-layers 4 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import cpu_name, matmul_peak_gflops, minilm_dir
from lora_vs_full import sst2_subset

from bertkit.atomic import write_json

DATA = Path(os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
MODES = {
    "cached": [],
    "uncached-no-frozen-dropout": ["--model.cache_frozen", "false", "--model.frozen_dropout", "false"],
    "uncached-frozen-dropout": ["--model.cache_frozen", "false"],
}


def run(mode: str, args: argparse.Namespace, folder: Path) -> dict:
    task, metric = ("ner", "f1") if args.data == "wnut17" else ("classify", "accuracy")
    if args.data == "wnut17":
        data = ["--dataset", "wnut17", "--data-dir", str(DATA)]
    else:
        train = sst2_subset(args.train_size, 0, folder)
        data = [
            "--train",
            str(train),
            "--dev",
            str(DATA / "glue_sst2" / "dev.tsv"),
            "--text-column",
            "sentence",
        ]
    out = folder / mode
    cmd = [
        sys.executable, "-m", "bertkit.cli.app", "finetune", task, "--model", args.model, *data,
        "--out", str(out), "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch-size", "32",
        "--seed", str(args.seed), "--model.freeze_embeddings", "true",
        "--model.freeze_layers", str(args.freeze_layers), "--output.plot", "false", *MODES[mode],
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    end = [e for e in map(json.loads, (out / "train_log.jsonl").open()) if e["event"] == "train_end"][-1]
    return {
        "mode": mode,
        metric: metrics["after"][metric],
        "train_seconds": end["train_seconds"],
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=("wnut17", "sst2"), default="wnut17")
    parser.add_argument("--model", default=None, help="default: the bundled MiniLM (6 layers)")
    parser.add_argument("--freeze-layers", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=4000, help="SST-2 train sentences")
    parser.add_argument("--modes", default=",".join(MODES), help="which of: " + ", ".join(MODES))
    parser.add_argument("--out", help="write the rows as JSON")
    args = parser.parse_args()
    args.model = args.model or minilm_dir()
    peaks = matmul_peak_gflops()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_frozen_") as tmp:
        for mode in args.modes.split(","):
            rows.append(run(mode, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nCPU: {cpu_name()}; matmul peak " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    print(
        f"{args.data}: embeddings and {args.freeze_layers} layers frozen, {args.epochs} epochs, "
        f"seed {args.seed}"
    )
    base = rows[0]
    for r in rows:
        quality = {k: v for k, v in r.items() if k in ("f1", "accuracy")}
        print(
            f"  {r['mode']:<28} {json.dumps(quality)}  train {r['train_seconds']:.0f} s "
            f"(x{r['train_seconds'] / base['train_seconds']:.2f} of cached), wall {r['wall']:.0f} s"
        )
    if args.out:
        write_json(args.out, {"cpu": cpu_name(), "peaks": peaks, "rows": rows})


if __name__ == "__main__":
    main()
