"""Benchmark: the optimizer's share of a step, gradient clipping done torch's way or inside the fused step.

On MiniLM (22.7M parameters, the 30k-row embedding half of them) the optimizer and clipping were a
fifth of a training step (profile_step.py). This times, on the model's real parameter shapes with
random gradients: ``clip_grad_norm_`` then the fused AdamW step (before), and
``bertkit.training.optim.clip_gradients`` (the same norm, the scaling inside the fused kernel) then
the step. Both in one run, alternating, the median of ``--steps`` each.

    python benchmarks/optimizer_step.py --steps 40
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from harness import TORCH_THREADS, cpu_name, minilm_dir
from transformers import AutoModelForTokenClassification

from bertkit.training.optim import clip_gradients, make_optimizer


def timed_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fused_clip: bool) -> float:
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2  # a norm well over 1.0: clipping scales every gradient
    start = time.perf_counter()
    if fused_clip:
        clip_gradients(optimizer, params, 1.0)
    else:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    seconds = time.perf_counter() - start
    optimizer.zero_grad(set_to_none=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(TORCH_THREADS)
    model = AutoModelForTokenClassification.from_pretrained(minilm_dir(), num_labels=13)
    optimizer = make_optimizer(model, 5e-5, 0.01)
    times: dict[bool, list[float]] = {False: [], True: []}
    for step in range(args.steps + 4):
        for fused_clip in (False, True):
            seconds = timed_step(model, optimizer, fused_clip)
            if step >= 4:  # warm-up: the first steps allocate the optimizer state
                times[fused_clip].append(seconds)
    before, after = (statistics.median(times[k]) for k in (False, True))
    params = sum(p.numel() for p in model.parameters())
    print(f"CPU: {cpu_name()}; {TORCH_THREADS} threads; {params / 1e6:.1f}M parameters")
    print(f"clip_grad_norm_ + fused AdamW: {1000 * before:.1f} ms; clipped inside: {1000 * after:.1f} ms")
    print(f"x{before / after:.2f} faster, {1000 * (before - after):.1f} ms saved per optimizer step")


if __name__ == "__main__":
    main()
