"""Saved models of every task family without training: the task builds its head on the tiny BERT with
random weights, and the folder gets what ``bertkit finetune`` writes (weights, tokenizer, run.yaml)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from bertkit.atomic import write_text
from bertkit.config import build_config
from bertkit.modeling.load import load_tokenizer
from bertkit.tasks import TASKS, make_task
from bertkit.training.checkpoint import save_model

LABELS = {
    "ner": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    "classify": ["neg", "pos", "mixed"],
    "qa": None,
    "re": ["Other", "knows", "lives_in(e1,e2)", "lives_in(e2,e1)"],
}


def save_untrained(task_name: str, base: Path, out: Path, seed: int = 0) -> Path:
    """A model of ``task_name`` on ``base`` with a seeded random head, saved in ``out``."""
    overrides = {"model": {"name_or_path": str(base), "max_length": 48}}
    if task_name == "qa":
        overrides["qa"] = {"max_question_length": 16}
    cfg = build_config(task_name, TASKS[task_name].config_class, overrides)
    tokenizer = load_tokenizer(cfg.model)
    task = make_task(cfg, tokenizer, LABELS[task_name])
    task.prepare_tokenizer(tokenizer)
    torch.manual_seed(seed)
    model = task.build_model()
    save_model(model, tokenizer, out)
    write_text(out / "run.yaml", cfg.to_yaml())
    return out


@functools.cache
def exported(task_name: str, base: Path, root: Path) -> tuple[Path, Path]:
    """(saved model, its ``bertkit export --quantize int8`` folder) under ``root``, made once per test
    session: an export takes tens of seconds on a busy 2-core machine, so the tests share them."""
    from bertkit.recipes.export import export_model_dir

    model = save_untrained(task_name, base, root / f"{task_name}_model")
    out = root / f"{task_name}_onnx"
    export_model_dir(model, out, quantize="int8")
    return model, out


# inputs of the Python API, a few per family, for torch-vs-onnx comparisons
INPUTS = {
    "ner": ["alice went to paris", "bob smith met carol in tokyo today", "the old big home"],
    "classify": ["alice went to paris", "bob saw oslo", "a big old home with dave"],
    "qa": [
        {"question": "where did alice go", "context": "alice went to paris and then home"},
        {"question": "who met bob", "context": "carol met bob in lima today"},
    ],
    "re": ["the <e1>bob</e1> saw <e2>paris</e2> today", "<e2>alice</e2> met <e1>dave</e1> in oslo"],
}
