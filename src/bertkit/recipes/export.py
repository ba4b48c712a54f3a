"""The export recipe: a fine-tuned model directory -> a folder that ``predict`` and ``serve`` run with
``--engine onnx``: ``model.onnx`` (and ``model.int8.onnx``), the tokenizer, ``config.json`` with the
labels, ``run.yaml`` and ``export.json`` (what the checks measured).

The folder is built under a temporary name beside ``--out`` and renamed into place only when every
check passed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bertkit.atomic import swap_folder, write_json, write_text
from bertkit.errors import BertkitError
from bertkit.inference.predictor import Predictor
from bertkit.modeling import export as onnx_export
from bertkit.modeling.export import FP32_TOLERANCE, INT8_FILE, ONNX_FILE
from bertkit.tasks.base import PredictionTask
from bertkit.training.runtime import thread_count

QUANTIZE = ("int8",)
SAMPLE_WINDOWS = 16  # windows of --samples that the checks run: enough for several batch sizes
# synthetic (rows, length) batches when no samples are given: traced at the first, checked at all
SYNTHETIC_SHAPES = ((2, 16), (3, 9), (1, 23))


def export_model_dir(
    model_dir: str | Path,
    out: str | Path,
    quantize: str | None = None,
    samples: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export ``model_dir`` into ``out``; returns what ``export.json`` holds."""
    out = Path(out)
    if quantize is not None and quantize not in QUANTIZE:
        raise BertkitError(f"--quantize takes one of {QUANTIZE}, got {quantize!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise BertkitError(
            f"--out {out} exists and is not an empty directory; pass --overwrite to replace it"
        )
    if Path(model_dir).resolve() == out.resolve():
        raise BertkitError("--out must be another directory than --model")
    predictor = Predictor.load(model_dir, precision="fp32")
    task, model = predictor.task, predictor.model.cpu().eval()
    if not task.exportable:
        raise BertkitError(
            f"{model_dir}: a {task.name} model generates step by step; bertkit export writes single-pass "
            "models only (ner, classify, qa, re). Serve it with the torch engine (bertkit serve)"
        )
    batches = sample_batches(task, model, samples)
    names = [n for n in task.input_names if n in batches[0]]
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.exporting-"))
    try:
        report = export_checked(model, batches, names, scratch, quantize)
        task.tokenizer.save_pretrained(scratch)
        copy_configs(Path(model_dir), scratch, task.name)
        write_json(scratch / "export.json", report)
        swap_folder(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def export_checked(
    model: torch.nn.Module,
    batches: Sequence[dict[str, torch.Tensor]],
    names: Sequence[str],
    folder: Path,
    quantize: str | None,
) -> dict[str, Any]:
    """Write ``model.onnx`` (and the int8 one) in ``folder``; raise if onnxruntime disagrees with torch."""
    inputs = [{n: b[n] for n in names} for b in batches]
    outputs = onnx_export.export_onnx(model, inputs[0], names, folder / ONNX_FILE)
    session = onnx_export.onnx_session(folder / ONNX_FILE, thread_count())
    onnx_export.check_dynamic_axes(session, ONNX_FILE)
    fp32 = onnx_export.compare(model, session, inputs, outputs)
    if fp32.max_abs_diff > FP32_TOLERANCE:
        raise BertkitError(
            f"export refused: onnxruntime's {fp32.worst_output} differ from PyTorch's by up to "
            f"{fp32.max_abs_diff:.2e} (the tolerance is {FP32_TOLERANCE:.0e}); nothing was written"
        )
    report: dict[str, Any] = {
        "inputs": list(names),
        "outputs": outputs,
        "checked_shapes": [list(b[names[0]].shape) for b in inputs],
        "fp32": {**fp32.to_dict(), "tolerance": FP32_TOLERANCE, "bytes": file_bytes(folder, ONNX_FILE)},
    }
    if quantize == "int8":
        settings = onnx_export.quantize_onnx_int8(folder / ONNX_FILE, folder / INT8_FILE)
        int8_session = onnx_export.onnx_session(folder / INT8_FILE, thread_count())
        onnx_export.check_dynamic_axes(int8_session, INT8_FILE)
        int8 = onnx_export.compare(model, int8_session, inputs, outputs)
        report["int8"] = {**int8.to_dict(), **settings, "bytes": file_bytes(folder, INT8_FILE)}
    return report


def file_bytes(folder: Path, name: str) -> int:
    """Size of an ONNX file with its external data, if any."""
    return sum(p.stat().st_size for p in folder.glob(f"{name}*"))


def sample_batches(
    task: PredictionTask, model: torch.nn.Module, samples: str | None
) -> list[dict[str, torch.Tensor]]:
    """Batches to trace and check: windows of the ``samples`` file (in the task's predict format), in
    batches of 4, 3 and the rest; else synthetic ids of ``SYNTHETIC_SHAPES``."""
    if samples is None:
        return [
            synthetic_batch(task, model, rows, length, seed)
            for seed, (rows, length) in enumerate(SYNTHETIC_SHAPES)
        ]
    records = task.read(samples, labelled=False)
    if not records:
        raise BertkitError(f"--samples {samples}: no records; the checks need at least 5 windows")
    features = task.encode(records)[:SAMPLE_WINDOWS]
    if len(features) < 5:
        raise BertkitError(f"--samples {samples}: {len(features)} windows; the checks need at least 5")
    parts = [features[:4], features[4:7], features[7:]] if len(features) > 7 else [features[:4], features[4:]]
    batches = [task.collate(part) for part in parts]
    if batches[0]["input_ids"].shape[1] < 2:
        raise BertkitError(f"--samples {samples}: the first windows are shorter than 2 tokens")
    return batches


def synthetic_batch(
    task: PredictionTask, model: torch.nn.Module, rows: int, length: int, seed: int
) -> dict[str, torch.Tensor]:
    """Random ids with the task's inputs: the second row padded to half its length, token types 0, and
    any other input (relation's head_start, tail_start) a position inside every row's text."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    length = min(length, task.model_cfg.max_length, getattr(config, "max_position_embeddings", length))
    ids = torch.randint(0, config.vocab_size, (rows, length), generator=generator)
    mask = torch.ones(rows, length, dtype=torch.long)
    if rows > 1:
        mask[1, max(1, length // 2) :] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    for name in task.input_names:
        if name == "token_type_ids":
            batch[name] = torch.zeros(rows, length, dtype=torch.long)
        elif name not in batch:
            batch[name] = torch.randint(0, max(1, length // 2), (rows,), generator=generator)
    return batch


def copy_configs(model_dir: Path, folder: Path, task_name: str) -> None:
    """``config.json`` (labels, architecture) and ``run.yaml`` (the task's settings) as trained; a
    plain Hugging Face model gets a ``run.yaml`` naming its task."""
    shutil.copy2(model_dir / "config.json", folder / "config.json")
    if (model_dir / "run.yaml").is_file():
        shutil.copy2(model_dir / "run.yaml", folder / "run.yaml")
    else:
        write_text(folder / "run.yaml", f"task: {task_name}\n")
