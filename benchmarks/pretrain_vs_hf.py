"""Benchmark: masked-LM pretraining, bertkit against the Hugging Face way, same model, data and steps.

One random-initialised BERT (the ``mini`` preset: 4 layers, 256 hidden) is saved once and trained by
each variant from those same weights on the same corpus (WikiText-2 valid by default), sequence length,
batch, learning rate and number of steps:
- **bertkit**: ``bertkit pretrain --objective mlm`` (bf16 where the CPU has it, sparse MLM head);
- **bertkit-dense**: the same with the decoder over every position, to measure the sparse head;
- **B1-bf16**: ``BertForMaskedLM`` + ``DataCollatorForLanguageModeling`` + ``Trainer(bf16=True)``, the
  text tokenised and grouped into blocks as ``run_mlm.py`` does.
Every final model is then scored by this script on the same held-out blocks (WikiText-2 test) under the
same masks. Prints tokens/s, the ratios, held-out MLM accuracy, and the model FLOP utilisation against
this CPU's bf16 matmul peak measured here.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import (  # noqa: E402
    QUIET_TRAINER,
    TORCH_THREADS,
    bertkit_executable,
    bf16_fast,
    peak_rss_mb,
    print_machine,
    run_variant_process,
)

from bertkit.atomic import write_json  # noqa: E402

VARIANTS = ("bertkit", "bertkit-dense", "B1-bf16")
WIKITEXT_HEADING = r"^ = [^=].* = $"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    data = os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data")
    p.add_argument("--train-text", default=f"{data}/wikitext2/valid.txt")
    p.add_argument("--heldout-text", default=f"{data}/wikitext2/test.txt")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--size", default="mini")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--heldout-blocks", type=int, default=400)
    p.add_argument("--work", help="folder for the shared tokenizer and initial weights (default: temporary)")
    p.add_argument("--out", help="also write the table as JSON here")
    p.add_argument("--run-one", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    return p.parse_args()


def prepare(args: argparse.Namespace, work: Path) -> None:
    """The tokenizer (bertkit vocab on the training text) and the initial weights all variants share."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from bertkit.pretrain.task import bert_config

    vocab = work / "vocab"
    if not vocab.exists():
        cmd = [bertkit_executable(), "-q", "vocab", "--input", args.train_text, "--out", str(vocab)]
        subprocess.run([*cmd, "--vocab-size", str(args.vocab_size)], check=True)
    tokenizer = AutoTokenizer.from_pretrained(vocab)
    torch.manual_seed(args.seed)
    model = BertForMaskedLM(bert_config(args.size, tokenizer, args.max_length))
    model.save_pretrained(work / "init")
    tokenizer.save_pretrained(work / "init")


def blocks(tokenizer: Any, path: str, max_length: int) -> list[list[int]]:
    """``run_mlm.py``'s preprocessing: tokenise each line, concatenate, cut into blocks of max_length."""
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = [i for row in tokenizer(lines, add_special_tokens=True)["input_ids"] for i in row]
    return [ids[k : k + max_length] for k in range(0, len(ids) - max_length + 1, max_length)]


def run_trainer(args: argparse.Namespace, work: Path, out: Path) -> dict[str, Any]:
    import torch
    import transformers as hf

    torch.set_num_threads(TORCH_THREADS)
    hf.set_seed(args.seed)
    tokenizer = hf.AutoTokenizer.from_pretrained(work / "init")
    model = hf.BertForMaskedLM.from_pretrained(work / "init")
    train = [{"input_ids": b} for b in blocks(tokenizer, args.train_text, args.max_length)]
    training_args = hf.TrainingArguments(
        output_dir=str(out / "trainer"),
        seed=args.seed,
        max_steps=args.steps,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        weight_decay=0.01,
        warmup_steps=0.1,  # transformers 5: a float < 1 is the warm-up ratio
        **QUIET_TRAINER,
        bf16=bf16_fast(),  # fp32 on a CPU without bf16 units (harness.bf16_fast)
    )
    collator = hf.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = hf.Trainer(model=model, args=training_args, data_collator=collator, train_dataset=train)
    metrics = trainer.train().metrics
    trainer.save_model(str(out / "model"))
    return {
        "train_tokens_per_s": metrics["train_samples_per_second"] * args.max_length,
        "train_seconds": metrics["train_runtime"],
        "model": str(out / "model"),
    }


def run_bertkit(args: argparse.Namespace, work: Path, out: Path, dense: bool) -> dict[str, Any]:
    cmd = [bertkit_executable(), "-q", "pretrain", "--input", args.train_text, "--from", str(work / "init")]
    cmd += ["--objective", "mlm", "--documents", "file", "--doc-start", WIKITEXT_HEADING]
    cmd += ["--max-length", str(args.max_length), "--batch-size", str(args.batch_size), "--lr", str(args.lr)]
    cmd += ["--steps", str(args.steps), "--seed", str(args.seed), "--train.eval_every", str(args.steps)]
    cmd += [
        "--train.warmup_ratio",
        "0.1",
        "--train.weight_decay",
        "0.01",
        "--train.threads",
        str(TORCH_THREADS),
    ]
    cmd += [
        "--pretrain.cache_dir",
        str(work / "cache"),
        "--output.checkpoint",
        "false",
        "--out",
        str(out / "model"),
    ]
    cmd += ["--pretrain.sparse_head", "false"] if dense else []
    subprocess.run(cmd, check=True)
    end = json.loads((out / "model" / "train_log.jsonl").read_text().splitlines()[-1])
    return {
        "train_tokens_per_s": end["train_tokens_per_s"],
        "train_seconds": end["train_seconds"],
        "model": str(out / "model"),
    }


def heldout_accuracy(model_dir: str, args: argparse.Namespace) -> dict[str, float]:
    """MLM accuracy and loss on the held-out blocks, the same masks for every model (seeded collator)."""
    import math

    import torch
    import transformers as hf

    tokenizer = hf.AutoTokenizer.from_pretrained(model_dir)
    model = hf.AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    rows = blocks(tokenizer, args.heldout_text, args.max_length)[: args.heldout_blocks]
    collator = hf.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    torch.manual_seed(0)
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for k in range(0, len(rows), 32):
            batch = collator([{"input_ids": r} for r in rows[k : k + 32]])
            logits = model(input_ids=batch["input_ids"]).logits
            chosen = batch["labels"] != -100
            correct += int((logits[chosen].argmax(-1) == batch["labels"][chosen]).sum())
            loss_sum += float(
                torch.nn.functional.cross_entropy(logits[chosen], batch["labels"][chosen], reduction="sum")
            )
            total += int(chosen.sum())
    return {"mlm_accuracy": correct / total, "perplexity": math.exp(loss_sum / total)}


def flops_per_token(model_dir: str, max_length: int) -> float:
    """Training FLOPs per token: 6 x the encoder's matmul weights, attention scores, and the MLM decoder
    at the 15% masked positions (what any implementation must compute; a dense head does more)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    h, layers = c.hidden_size, c.num_hidden_layers
    encoder = layers * (4 * h * h + 2 * h * c.intermediate_size)
    attention = layers * 2 * max_length * h  # QK^T and AV per token
    decoder = 0.15 * (h * h + h * c.vocab_size)
    return 6 * (encoder + attention + decoder)


def main() -> None:
    args = parse_args()
    if args.run_one:
        work, out = Path(args.work), Path(args.json_out).parent
        if args.run_one == "B1-bf16":
            result = {**run_trainer(args, work, out), "peak_rss_mb": peak_rss_mb()}
        else:
            result = run_bertkit(args, work, out, dense=args.run_one == "bertkit-dense")
            result["peak_rss_mb"] = peak_rss_mb(children=True)
        result.update(heldout_accuracy(result.pop("model"), args), variant=args.run_one)
        Path(args.json_out).write_text(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="pretrain_vs_hf_") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepare(args, work)
        forwarded = [a for a in sys.argv[1:] if a not in ("--out", args.out)] + ["--work", str(work)]
        started = time.perf_counter()
        rows = [
            r for r in (run_variant_process(__file__, v, forwarded) for v in args.variants.split(",")) if r
        ]
        flops = flops_per_token(str(work / "init"), args.max_length)
    machine = print_machine()
    peak = machine["matmul_gflops"]["bfloat16"] * 1e9
    seconds = time.perf_counter() - started
    print(f"{args.steps} steps of {args.batch_size} x {args.max_length} tokens ({seconds:.0f}s in all)")
    print(f"{'variant':<14} {'tokens/s':>9} {'train s':>8} {'MFU':>6} {'held-out acc':>12} {'ppl':>8}")
    for r in rows:
        r["mfu"] = r["train_tokens_per_s"] * flops / peak
        print(
            f"{r['variant']:<14} {r['train_tokens_per_s']:>9.0f} {r['train_seconds']:>8.1f} "
            f"{100 * r['mfu']:>5.1f}% {r['mlm_accuracy']:>12.4f} {r['perplexity']:>8.1f}"
        )
    by = {r["variant"]: r for r in rows}
    for ours in ("bertkit", "bertkit-dense"):
        if ours in by and "B1-bf16" in by:
            ratio = by[ours]["train_tokens_per_s"] / by["B1-bf16"]["train_tokens_per_s"]
            gap = 100 * (by[ours]["mlm_accuracy"] - by["B1-bf16"]["mlm_accuracy"])
            print(f"{ours}/B1-bf16: tokens/s x{ratio:.2f}, held-out MLM accuracy {gap:+.2f} points")
    if "bertkit" in by and "bertkit-dense" in by:
        speed_up = by["bertkit"]["train_tokens_per_s"] / by["bertkit-dense"]["train_tokens_per_s"]
        print(f"sparse/dense MLM head: x{speed_up:.2f}")
    if args.out:
        write_json(args.out, {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
