"""Benchmark: bertkit's training throughput when another CPU-bound process shares the machine.

OpenMP threads that spin while they wait for each other lose badly when a neighbour holds one of the
cores: every parallel region ends at a barrier, and the thread that was descheduled makes the other one
spin until the scheduler gives it back. The smaller the model, the more barriers per second, the worse
it gets. This script fine-tunes a model on an SST-2 subset alone and beside a neighbour (a Python busy
loop, one thread; or a torch matmul loop with its own OpenMP threads), under several thread settings,
and prints each run's examples/s against the fair share: half of what the same setting reaches alone
on this machine.

    python benchmarks/contention.py --models tiny,minilm --repeats 3 --out runs/contention.json

Settings (each an environment for the bertkit process): ``fixed`` is torch's own default (all the
cores, libgomp's threads spinning before they sleep; what bertkit did before), ``passive`` sets
``OMP_WAIT_POLICY=PASSIVE``, ``1-thread`` runs one thread (these three with
``--train.adapt_threads false``), ``auto`` leaves everything to bertkit's defaults: spinning threads,
fewer of them while a neighbour keeps a core busy (``bertkit.training.threads``). All figures come
from one run of this script: compare them only with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import cpu_name, matmul_peak_gflops, minilm_dir
from lora_vs_full import sst2_subset

from bertkit.atomic import write_json

DATA = Path(os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
CORES = len(os.sched_getaffinity(0))
# What each setting puts into the bertkit process's environment (on top of the parent's, minus these),
# and the flags it adds; all but ``auto`` keep the thread count fixed for the whole run.
FIXED = ["--train.adapt_threads", "false"]
SETTINGS = {
    "fixed": ({"OMP_NUM_THREADS": str(CORES)}, FIXED),
    "passive": ({"OMP_NUM_THREADS": str(CORES), "OMP_WAIT_POLICY": "PASSIVE"}, FIXED),
    "1-thread": ({"OMP_NUM_THREADS": "1"}, FIXED),
    "auto": ({}, []),
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
NEIGHBOURS = {
    "python": "import time\nn = 0\nwhile True:\n    n += 1",
    # A torch job with libgomp's defaults, as another user's training script would run.
    "torch": "import torch\na = torch.randn(256, 256)\nwhile True:\n    a = torch.tanh(a @ a)",
}


def tiny_model(folder: Path) -> Path:
    """A 2-layer, 64-wide random BERT with MiniLM's vocabulary: a step is many tiny parallel regions."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = folder / "tiny"
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
    )
    BertModel(config).save_pretrained(out)
    return out


def train_once(model: Path, epochs: float, setting: str, train: Path, dev: Path, out: Path) -> float:
    """One ``bertkit finetune classify`` process under ``setting``; its training examples/s."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    cmd = [
        sys.executable, "-m", "bertkit.cli.app", "finetune", "classify", "--model", str(model),
        "--train", str(train), "--dev", str(dev), "--text-column", "sentence", "--out", str(out),
        "--overwrite", "--epochs", str(epochs), "--batch-size", "32", "--seed", "1",
        "--output.plot", "false", "--output.checkpoint", "false",
        *SETTINGS[setting][1],
    ]  # fmt: skip
    done = subprocess.run(cmd, env={**env, **SETTINGS[setting][0]}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    end = [e for e in map(json.loads, (out / "train_log.jsonl").open()) if e["event"] == "train_end"][-1]
    return end["train_examples_per_s"]


class Neighbour:
    """The other CPU-bound process, started before the run and stopped after it."""

    def __init__(self, kind: str | None) -> None:
        self.kind, self.process = kind, None

    def __enter__(self) -> Neighbour:
        if self.kind:
            self.process = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[self.kind]])
            time.sleep(2.0)  # let it import torch and start its loop
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def measure(args: argparse.Namespace, models: dict[str, Path], folder: Path) -> list[dict]:
    """Every (model, neighbour, setting) ``--repeats`` times, repeats outermost so drift spreads evenly."""
    train = sst2_subset(args.train_size, 0, folder)
    dev = folder / "dev.tsv"
    dev.write_text("".join((DATA / "glue_sst2" / "dev.tsv").open(encoding="utf-8").readlines()[:201]))
    for model in models.values():  # discarded: the first run of a session is slower than the rest
        train_once(model, 1, "fixed", train, dev, folder / "out")
    rows = []
    for repeat in range(args.repeats):
        for name, model in models.items():
            epochs = args.epochs_tiny if name == "tiny" else args.epochs
            for neighbour in ["none", *args.neighbours]:
                # a new order each time: no setting always runs first, after a neighbour was killed
                for setting in random.Random(f"{repeat}{name}{neighbour}").sample(
                    args.settings, len(args.settings)
                ):
                    with Neighbour(None if neighbour == "none" else neighbour):
                        speed = train_once(model, epochs, setting, train, dev, folder / "out")
                    rows.append(
                        {"model": name, "neighbour": neighbour, "setting": setting, "repeat": repeat,
                         "examples_per_s": speed}
                    )  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: list[dict], args: argparse.Namespace) -> list[dict]:
    """Median examples/s per cell, and its share of the fair share (half of the same setting alone)."""
    cells = {}
    for r in rows:
        cells.setdefault((r["model"], r["neighbour"], r["setting"]), []).append(r["examples_per_s"])
    table = []
    for (model, neighbour, setting), speeds in cells.items():
        alone = statistics.median(cells[(model, "none", setting)])
        best_alone = max(statistics.median(v) for (m, n, _), v in cells.items() if m == model and n == "none")
        speed = statistics.median(speeds)
        table.append(
            {"model": model, "neighbour": neighbour, "setting": setting, "examples_per_s": speed,
             "of_best_alone": speed / best_alone,
             "of_fair_share": None if neighbour == "none" else speed / (best_alone / 2),
             "spread": (max(speeds) - min(speeds)) / speed, "alone_same_setting": alone}
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,minilm", help="comma-separated: tiny, minilm")
    parser.add_argument("--neighbours", default="python,torch", help=f"comma-separated: {list(NEIGHBOURS)}")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated: {list(SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=1, help="MiniLM's epochs")
    parser.add_argument("--epochs-tiny", type=float, default=4)
    parser.add_argument("--out", help="write the rows and the table as JSON")
    args = parser.parse_args()
    args.neighbours = [n for n in args.neighbours.split(",") if n]
    args.settings = args.settings.split(",")
    machine = {"cpu": cpu_name(), "cores": CORES, "peak": matmul_peak_gflops()}
    with tempfile.TemporaryDirectory(prefix="bench_contention_") as tmp:
        folder = Path(tmp)
        known = {"tiny": lambda: tiny_model(folder), "minilm": lambda: Path(minilm_dir())}
        models = {name: known[name]() for name in args.models.split(",")}
        rows = measure(args, models, folder)
    table = summarise(rows, args)
    print(
        f"\nCPU: {machine['cpu']}, {CORES} cores; matmul peak "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in machine["peak"].items())
    )
    header = ("model", "neighbour", "setting", "ex/s", "of best alone", "of fair share")
    print("{:<7} {:<9} {:<9} {:>8} {:>14} {:>14}".format(*header))
    for r in table:
        fair = "-" if r["of_fair_share"] is None else f"x{r['of_fair_share']:.2f}"
        print(
            f"{r['model']:<7} {r['neighbour']:<9} {r['setting']:<9} {r['examples_per_s']:>8.1f} "
            f"{'x' + format(r['of_best_alone'], '.2f'):>14} {fair:>14}"
        )
    if args.out:
        write_json(args.out, {"machine": machine, "rows": rows, "table": table})


if __name__ == "__main__":
    main()
