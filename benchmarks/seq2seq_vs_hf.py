"""Benchmark: sequence to sequence, bertkit against Hugging Face's Seq2SeqTrainer and plain `generate`.

Same warm-started encoder-decoder (bert2bert from MiniLM, or with the Chinese decoder), same pairs,
same hyper-parameters and generation settings, each variant in its own process:
- bertkit: `bertkit finetune seq2seq` with its defaults (bf16 where the CPU has it, length-grouped
  batches, dynamic padding, a long source read in windows), then `bertkit.load(DIR).predict` on test.
- HF-bf16: `EncoderDecoderModel.from_encoder_decoder_pretrained`, `Seq2SeqTrainer` with `bf16=True`,
  `DataCollatorForSeq2Seq` (dynamic padding) and length-grouped batches, sources truncated to the
  window as its tokenizer does; test scored from `model.generate` (what `predict_with_generate` runs).
Training throughput counts training pairs (x epochs) per second of the training loop. Generation
throughput is measured on bertkit's fine-tuned model both ways in the bertkit process: bertkit's
predictor against `model.generate` called the plain way (fp32, batches in input order, the same beam
size and lengths). Every output is scored by the same metrics (ROUGE, sacreBLEU, chrF).

Data (prepared here from the shared folder, the same files for every variant):
- scitldr: SciTLDR-A train / dev / test (abstract -> TLDR; dev and test with all their references).
- tatoeba: Tatoeba cmn-eng, split by English sentence with a seed (every translation of a test
  sentence is a reference), en -> zh with a decoder of its own vocabulary (``--decoder``).
- kdconv: KdConv dev split by conversation into train/dev (seed 0), its test files as test;
  context -> next turn.
"""

from __future__ import annotations

import argparse
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
    QUIET_TRAINER,
    TORCH_THREADS,
    add_hyper_arguments,
    add_run_arguments,
    bertkit_executable,
    bertkit_figures,
    bf16_fast,
    finish,
    forwarded_hyper,
    minilm_dir,
    peak_rss_mb,
    print_machine,
    run_variant_process,
)

from bertkit.tasks.seq2seq.metrics import MAIN_METRIC  # noqa: E402

# bertkit-whole: the whole encoder embedding trained, an fp32 residual stream (bertkit before 2026-12-08)
VARIANTS = ("bertkit", "bertkit-whole", "HF-bf16")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(os.environ.get("BERTKIT_DATA_DIR") or SHARED)
KINDS = {"scitldr": "summarize", "tatoeba": "translate", "kdconv": "dialogue"}


# -- data -------------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace, folder: Path) -> dict[str, Path]:
    """train/dev/test JSON lines of {"source", "target": [references]} for ``args.data``."""
    from bertkit.data.readers.seq2seq import read_seq2seq

    rng = random.Random(0)
    if args.data == "scitldr":
        splits = {
            s: read_seq2seq(DATA / "scitldr" / "SciTLDR-A" / f"{s}.jsonl") for s in ("train", "dev", "test")
        }
    elif args.data == "tatoeba":
        pairs = read_seq2seq(DATA / "tatoeba_cmn_en" / "cmn.txt", fmt="tsv")
        by_source: dict[str, list[str]] = {}
        for p in pairs:
            by_source.setdefault(p.source, []).append(p.target)
        sources = sorted(by_source)
        rng.shuffle(sources)
        n_test, n_dev = args.test_size or 1000, 500
        cut = {
            "test": sources[:n_test],
            "dev": sources[n_test : n_test + n_dev],
            "train": sources[n_test + n_dev :],
        }
        splits = {
            "train": [(s, [t]) for s in cut["train"] for t in by_source[s]],
            "dev": [(s, by_source[s]) for s in cut["dev"]],
            "test": [(s, by_source[s]) for s in cut["test"]],
        }
    else:
        dev_files = [DATA / "kdconv" / d / "dev.json" for d in ("film", "music", "travel")]
        test_files = [DATA / "kdconv" / d / "test.json" for d in ("film", "music", "travel")]
        turns = args.context_turns
        conversations = [read_seq2seq(f, fmt="kdconv", context_turns=turns) for f in dev_files]
        groups: dict[str, list] = {}
        for records in conversations:
            for r in records:
                groups.setdefault(r.id.rsplit("/", 1)[0], []).append(r)
        names = sorted(groups)
        rng.shuffle(names)
        n_dev = len(names) // 10
        splits = {
            "train": [r for n in names[n_dev:] for r in groups[n]],
            "dev": [r for n in names[:n_dev] for r in groups[n]],
            "test": [r for f in test_files for r in read_seq2seq(f, fmt="kdconv", context_turns=turns)],
        }
    out = {}
    for split, rows in splits.items():
        rows = [(r.source, r.targets) if hasattr(r, "source") else r for r in rows]
        limit = {"train": args.train_size, "dev": args.dev_size, "test": args.test_size}[split]
        if limit and limit < len(rows):
            rows = random.Random(1).sample(rows, limit)
        out[split] = folder / f"{split}.jsonl"
        out[split].write_text(
            "".join(json.dumps({"source": s, "target": t}, ensure_ascii=False) + "\n" for s, t in rows),
            encoding="utf-8",
        )
    return out


def read_pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- variants ---------------------------------------------------------------------------------------


def run_bertkit(args: argparse.Namespace, files: dict[str, Path], whole: bool = False) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="bench_s2s_"))
    command = [
        bertkit_executable(), "-q", "finetune", "seq2seq", "--model", minilm_dir(),
        "--train", str(files["train"]), "--dev", str(files["dev"]), "--test", str(files["test"]),
        "--out", str(out), "--overwrite", "--kind", KINDS[args.data],
        "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
        "--max-length", str(args.max_length), "--seed", str(args.seed),
        "--train.warmup_ratio", str(args.warmup_ratio), "--train.weight_decay", str(args.weight_decay),
        "--seq2seq.max_target_length", str(args.max_target_length),
        "--num-beams", str(args.num_beams), "--max-new-tokens", str(args.max_new_tokens),
        *(["--decoder", args.decoder] if args.decoder else []),
        *(["--train.compact_embeddings", "false", "--train.bf16_stream", "false"] if whole else []),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    figures = bertkit_figures(out)
    test = figures.pop("metrics")["after"]
    generation = compare_generation(out, files["test"], args)
    return {
        **figures,
        "score": test[MAIN_METRIC[KINDS[args.data]]],
        "test": {k: v for k, v in test.items() if not k.endswith("signature")},
        "signature": test.get("bleu_signature"),
        **generation,
        "peak_rss_mb": peak_rss_mb(children=True),
    }


def compare_generation(model_dir: Path, test: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Sequences/s and scores of bertkit's predictor and of plain ``model.generate`` on the same model."""
    import torch
    from transformers import AutoTokenizer, EncoderDecoderModel

    import bertkit
    from bertkit.tasks.seq2seq.metrics import generation_scores
    from bertkit.tasks.seq2seq.writer import detokenize

    torch.set_num_threads(TORCH_THREADS)
    rows = read_pairs(test)
    sources, references = [r["source"] for r in rows], [r["target"] for r in rows]
    kind = KINDS[args.data]
    predictor = bertkit.load(model_dir, batch_size=args.batch_size)
    start = time.perf_counter()
    ours = [r.output for r in predictor.predict(sources)]
    ours_s = time.perf_counter() - start

    model = EncoderDecoderModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    target_dir = model_dir / "decoder_tokenizer"
    target_tokenizer = AutoTokenizer.from_pretrained(target_dir) if target_dir.is_dir() else tokenizer
    plain = []
    start = time.perf_counter()
    with torch.no_grad():
        for begin in range(0, len(sources), args.batch_size):
            batch = tokenizer(
                sources[begin : begin + args.batch_size],
                padding=True,
                truncation=True,
                max_length=args.max_length,
                return_tensors="pt",
            )
            ids = model.generate(**batch, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
            plain += [detokenize(target_tokenizer, row) for row in ids.tolist()]
    plain_s = time.perf_counter() - start
    main = MAIN_METRIC[kind]
    return {
        "generate_seq_per_s": len(sources) / ours_s,
        "plain_generate_seq_per_s": len(sources) / plain_s,
        "generate_score": generation_scores(ours, references, kind)[main],
        "plain_generate_score": generation_scores(plain, references, kind)[main],
    }


def run_trainer(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        EncoderDecoderModel,
        GenerationConfig,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    from bertkit.tasks.seq2seq.metrics import generation_scores
    from bertkit.tasks.seq2seq.writer import detokenize

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    target_tokenizer = AutoTokenizer.from_pretrained(args.decoder) if args.decoder else tokenizer
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(minilm_dir(), args.decoder or minilm_dir())
    model.config.decoder_start_token_id = target_tokenizer.cls_token_id
    model.config.pad_token_id = target_tokenizer.pad_token_id
    model.config.eos_token_id = target_tokenizer.sep_token_id
    model.generation_config = GenerationConfig(
        decoder_start_token_id=target_tokenizer.cls_token_id,
        eos_token_id=target_tokenizer.sep_token_id,
        pad_token_id=target_tokenizer.pad_token_id,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
    )
    train = []
    for row in read_pairs(files["train"]):
        item = tokenizer(row["source"], truncation=True, max_length=args.max_length)
        labels = target_tokenizer(row["target"][0], truncation=True, max_length=args.max_target_length)
        item["labels"] = labels["input_ids"][1:]  # [CLS] is the decoder's start token, [SEP] its end
        train.append(dict(item))
    with tempfile.TemporaryDirectory(prefix="bench_s2s_hf_") as tmp:
        training_args = Seq2SeqTrainingArguments(
            output_dir=tmp,
            seed=args.seed,
            num_train_epochs=args.epochs,
            learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_ratio,
            **QUIET_TRAINER,
            train_sampling_strategy="group_by_length",
            bf16=bf16_fast(),  # fp32 on a CPU without bf16 units (harness.bf16_fast)
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, padding=True),
        )
        result = trainer.train()
    rows = read_pairs(files["test"])
    model.eval()
    outputs = []
    with torch.no_grad():
        for begin in range(0, len(rows), args.batch_size):
            sources = [r["source"] for r in rows[begin : begin + args.batch_size]]
            batch = tokenizer(
                sources, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt"
            )
            ids = model.generate(**batch)
            outputs += [detokenize(target_tokenizer, row) for row in ids.tolist()]
    test = generation_scores(outputs, [r["target"] for r in rows], KINDS[args.data])
    return {
        "train_examples_per_s": result.metrics["train_samples_per_second"],
        "train_seconds": result.metrics["train_runtime"],
        "score": test[MAIN_METRIC[KINDS[args.data]]],
        "test": {k: v for k, v in test.items() if not k.endswith("signature")},
        "signature": test.get("bleu_signature"),
        "peak_rss_mb": peak_rss_mb(),
    }


# -- main -------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=tuple(KINDS), default="scitldr")
    parser.add_argument("--decoder", help="decoder checkpoint (default: MiniLM, bert2bert)")
    parser.add_argument("--train-size", type=int, default=0, help="seeded sample of train pairs (0: all)")
    parser.add_argument("--dev-size", type=int, default=300)
    parser.add_argument("--test-size", type=int, default=0, help="seeded sample of test (0: all)")
    parser.add_argument("--context-turns", type=int, default=2, help="kdconv: turns of context")
    parser.add_argument("--max-target-length", type=int, default=64)
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--work", help="where the prepared data goes (default: a temporary folder)")
    add_run_arguments(parser, VARIANTS)
    defaults = {"epochs": 3.0, "lr": 5e-5, "batch-size": 16, "max-length": 512, "seed": 42}
    add_hyper_arguments(parser, {**defaults, "warmup-ratio": 0.1, "weight-decay": 0.01})
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.run_one:
        files = {s: Path(args.work) / f"{s}.jsonl" for s in ("train", "dev", "test")}
        if args.run_one.startswith("bertkit"):
            result = run_bertkit(args, files, whole=args.run_one == "bertkit-whole")
        else:
            result = run_trainer(args, files)
        Path(args.json_out).write_text(json.dumps(result))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_s2s_data_"))
    work.mkdir(parents=True, exist_ok=True)
    files = prepare(args, work)
    counts = {s: len(read_pairs(p)) for s, p in files.items()}
    print(f"{args.data}: {counts}; {args.epochs} epochs, beams {args.num_beams}")
    machine = print_machine()
    forwarded = [
        *forwarded_hyper(args), "--data", args.data, "--work", str(work),
        "--max-target-length", str(args.max_target_length), "--num-beams", str(args.num_beams),
        "--max-new-tokens", str(args.max_new_tokens), *(["--decoder", args.decoder] if args.decoder else []),
    ]  # fmt: skip
    rows = []
    for variant in args.variants.split(","):
        result = run_variant_process(__file__, variant, forwarded)
        if result:
            rows.append({"variant": variant, **result})
    report(rows, KINDS[args.data])
    finish({**machine, "data": args.data, "counts": counts}, rows, len(args.variants.split(",")), args.out)


def report(rows: list[dict], kind: str) -> None:
    metric = MAIN_METRIC[kind]
    print(f"\n{'variant':<13} {'ex/s':>7} {'train s':>8} {'wall s':>8} {'peak MB':>8} {metric:>10}")
    for r in rows:
        print(
            f"{r['variant']:<13} {r['train_examples_per_s']:>7.2f} {r['train_seconds']:>8.1f} "
            f"{r['wall_seconds']:>8.1f} {r['peak_rss_mb']:>8.0f} {r['score']:>10.2f}"
        )
    by_name = {r["variant"]: r for r in rows}
    ours, ref = by_name.get("bertkit"), by_name.get("HF-bf16")
    if ours and ref:
        speed = ours["train_examples_per_s"] / ref["train_examples_per_s"]
        print(
            f"bertkit/HF-bf16: training throughput x{speed:.2f}, "
            f"test {metric} {ours['score']:.2f} vs {ref['score']:.2f}"
        )
    whole = by_name.get("bertkit-whole")
    if ours and whole:
        speed = ours["train_examples_per_s"] / whole["train_examples_per_s"]
        print(f"bertkit/bertkit-whole: training throughput x{speed:.2f}")
    if ours:
        speed = ours["generate_seq_per_s"] / ours["plain_generate_seq_per_s"]
        print(
            f"generation on bertkit's model: {ours['generate_seq_per_s']:.2f} seq/s ({metric} "
            f"{ours['generate_score']:.2f}) vs plain generate {ours['plain_generate_seq_per_s']:.2f} seq/s "
            f"({ours['plain_generate_score']:.2f}): x{speed:.2f}"
        )


if __name__ == "__main__":
    main()
