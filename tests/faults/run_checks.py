"""The tiny run the fault tests interrupt, what its output directory must show after a fault, and what
makes two runs the same run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from conftest import ner_command
from safetensors.torch import load_file
from transformers import AutoModelForTokenClassification, AutoTokenizer

from bertkit.training.checkpoint import has_checkpoint

# 160 sentences in micro-batches of 16, two per step: 5 steps an epoch, 10 steps in all; checkpoints at
# steps 2, 4, 6, 8 and 10, dev evaluations at 3, 6, 9 and 10 (dev f1 improves at 3, 6 and 9: three
# saves of the best model); fp32 and dropout on, so a resume that restored any RNG or position wrongly
# would end with other weights
RUN = ["--batch-size", "16", "--train.grad_accum", "2", "--train.max_steps", "10", "--lr", "2e-2"]
RUN += ["--train.eval_every", "3", "--train.save_every", "2", "--max-length", "16", "--stride", "4"]
RUN += ["--precision", "fp32", "--train.threads", "1", "--output.plot", "false", "--train.log_every", "1"]
# names a temporary gets from bertkit's atomic writers: hidden, so no loader ever picks one up
TEMPORARY = (".saving-", ".checkpoint.")
# train_log.jsonl fields that measure time; everything else of a resumed run equals an uninterrupted one
TIMING = {"examples_per_s", "train_seconds", "train_examples_per_s", "wall_seconds"}


def run_args(tiny_bert: Path, data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ner_command(tiny_bert, data, out, *RUN, *extra)


def visible_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and not is_temporary(p.relative_to(out)))


def is_temporary(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def assert_nothing_half_written(out: Path) -> None:
    """Every file under its final name is whole (parses, opens, loads); what is not whole is hidden
    under a temporary name; the model folder loads; a complete checkpoint is there or put aside."""
    for path in out.iterdir():
        if path.name.startswith("."):
            assert path.name.startswith(TEMPORARY) or path.name.endswith(".tmp"), path
    for path in visible_files(out):
        whole(path)
    if (out / "config.json").exists():
        AutoModelForTokenClassification.from_pretrained(out)
        AutoTokenizer.from_pretrained(out)
    aside = out / ".checkpoint.old"
    assert has_checkpoint(
        aside if aside.exists() and not (out / "checkpoint").exists() else out / "checkpoint"
    )


def whole(path: Path) -> None:
    """Read ``path`` the way its readers do; fails on a torn file."""
    if path.suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    elif path.suffix == ".jsonl":
        for line in path.read_text(encoding="utf-8").splitlines():
            json.loads(line)
    elif path.suffix == ".yaml":
        yaml.safe_load(path.read_text(encoding="utf-8"))
    elif path.suffix == ".safetensors":
        load_file(str(path))
    elif path.suffix == ".pt":
        torch.load(path, weights_only=True)


def events(out: Path, left_out: set[str] = TIMING) -> list[dict]:
    lines = (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in left_out} for line in lines]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys(), (a, b)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), (b, name)


def assert_same_run(reference: Path, out: Path) -> None:
    """The same files, best model, final checkpoint, metrics.json and log (but for its timings)."""
    assert [p.relative_to(out) for p in out.rglob("*")] == [
        p.relative_to(reference) for p in reference.rglob("*")
    ]
    assert_same_weights(reference / "model.safetensors", out / "model.safetensors")
    assert_same_weights(
        reference / "checkpoint" / "model.safetensors", out / "checkpoint" / "model.safetensors"
    )
    state = torch.load(out / "checkpoint" / "training_state.pt", weights_only=True)["loop"]
    expected = torch.load(reference / "checkpoint" / "training_state.pt", weights_only=True)["loop"]
    state.pop("train_seconds"), expected.pop("train_seconds")
    assert state == expected
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (reference / "metrics.json").read_text()
    )
    assert events(out) == events(reference)
