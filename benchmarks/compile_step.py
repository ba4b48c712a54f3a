"""Does ``torch.compile`` pay for a fine-tuning step on this CPU? Eager against compiled, one run.

Issue 17 lists the inductor CPU backend as a candidate for less overhead per step. This script times
the same training step (MiniLM-L6 + a 2-way classification head, batch 32, lengths 10-28 sub-words like
SST-2's, bf16 autocast where the CPU multiplies in bf16 natively, else fp32; clipping at 1.0 and fused
AdamW) eager and under ``torch.compile(dynamic=True)`` (one graph for every length, so that it
compiles once, not once per batch shape), each variant in its own process. It prints the compile time
(the first two steps beyond an eager step), the median step after warm-up, their ratio, and the first
step's loss of each (the same weights and batch: they should agree to bf16/fp32 rounding).

    python benchmarks/compile_step.py                  # 60 steps per variant, ~8 min on 2 cores
    python benchmarks/compile_step.py --steps 20 --variants eager
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import (  # noqa: E402
    TORCH_THREADS,
    add_run_arguments,
    bf16_fast,
    minilm_dir,
    print_machine,
    run_variant_process,
)

from bertkit.atomic import write_json  # noqa: E402

VARIANTS = ("eager", "compiled")
LENGTHS = (10, 12, 14, 16, 18, 20, 24, 28)
BATCH = 32


def run_one(variant: str, steps: int, seed: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    bf16 = bf16_fast()

    def forward_backward(ids, mask, labels):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return loss

    step = torch.compile(forward_backward, dynamic=True) if variant == "compiled" else forward_backward
    batches = torch.Generator().manual_seed(seed)  # the same batches for every variant
    times, losses = [], []
    for _ in range(steps):
        length = rng.choice(LENGTHS)
        ids = torch.randint(1000, 20000, (BATCH, length), generator=batches)
        mask = torch.ones(BATCH, length, dtype=torch.long)
        labels = torch.randint(0, 2, (BATCH,), generator=batches)
        started = time.perf_counter()
        loss = step(ids, mask, labels)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
        losses.append(loss.item())
    settled = times[steps // 2 :]
    return {
        "variant": variant,
        "precision": "bf16" if bf16 else "fp32",
        "first_two_steps_s": sum(times[:2]),
        "median_step_ms": 1000 * statistics.median(settled),
        "first_loss": losses[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    add_run_arguments(p, VARIANTS)
    args = p.parse_args()
    if args.run_one:
        Path(args.json_out).write_text(json.dumps(run_one(args.run_one, args.steps, args.seed)))
        return
    machine = print_machine()
    forwarded = ["--steps", str(args.steps), "--seed", str(args.seed)]
    rows = [run_variant_process(__file__, variant, forwarded) for variant in args.variants.split(",")]
    rows = [r for r in rows if r is not None]  # a failed variant is reported by run_variant_process
    for r in rows:
        print(
            f"{r['variant']:<9} {r['precision']}: first two steps {r['first_two_steps_s']:.1f} s, "
            f"median step {r['median_step_ms']:.0f} ms, first loss {r['first_loss']:.5f}"
        )
    by = {r["variant"]: r for r in rows}
    if set(by) == set(VARIANTS):
        ratio = by["eager"]["median_step_ms"] / by["compiled"]["median_step_ms"]
        extra = by["compiled"]["first_two_steps_s"] - by["eager"]["first_two_steps_s"]
        print(f"compiled/eager: step x{ratio:.2f} faster, compile costs {extra:.0f} s")
    if args.out:
        write_json(args.out, {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
