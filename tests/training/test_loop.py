"""The training loop: a tiny model learns a tiny tagging pattern, and a resumed run ends exactly as an
uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ner_command
from safetensors.torch import load_file

from bertkit.cli.app import main
from bertkit.data.batching import length_grouped_batches
from bertkit.training import loop


def finetune_args(tiny_bert: Path, data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    quick = ["--batch-size", "16", "--max-length", "16", "--stride", "4", "--lr", "3e-3", "--seed", "3"]
    return ner_command(tiny_bert, data, out, *quick, *extra)


def test_tiny_model_learns_the_pattern_and_loss_falls(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "run"
    assert main(finetune_args(tiny_bert, synthetic_ner, out, "--epochs", "12")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["after"]["f1"] == 1.0
    assert metrics["before"]["f1"] < 0.5
    events = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses[-1] < losses[0] / 5
    dev_f1 = [e["f1"] for e in events if e["event"] == "eval"]
    assert dev_f1[-1] == 1.0 and len(dev_f1) == 12  # one evaluation per epoch
    end = events[-1]
    assert end["event"] == "train_end" and end["truncated_tokens"] == 0 and end["train_examples_per_s"] > 0


def test_resumed_run_ends_with_the_same_weights(tiny_bert, synthetic_ner, tmp_path, monkeypatch):
    args = ["--train.max_steps", "12", "--train.eval_every", "3"]
    full = tmp_path / "full"
    assert main(finetune_args(tiny_bert, synthetic_ner, full, *args)) == 0

    real_report = loop.report_step

    def crash_after_step_8(bar, train_log, state, *rest):
        real_report(bar, train_log, state, *rest)
        if state.step == 8:
            raise KeyboardInterrupt  # the last checkpoint is the one of step 6

    broken = tmp_path / "broken"
    monkeypatch.setattr(loop, "report_step", crash_after_step_8)
    assert main(finetune_args(tiny_bert, synthetic_ner, broken, *args)) == 130
    saved = torch.load(broken / "checkpoint" / "training_state.pt", weights_only=True)
    assert saved["loop"]["step"] == 6
    monkeypatch.setattr(loop, "report_step", real_report)
    assert main(finetune_args(tiny_bert, synthetic_ner, broken, *args, "--resume", str(broken))) == 0

    a = load_file(str(full / "checkpoint" / "model.safetensors"))
    b = load_file(str(broken / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    resumed = torch.load(broken / "checkpoint" / "training_state.pt", weights_only=True)["loop"]
    assert resumed["step"] == 12 and resumed["examples"] == 12 * 16


def test_resume_refuses_a_directory_without_state(tiny_bert, synthetic_ner, tmp_path, capsys):
    out = tmp_path / "nothing"
    assert main(finetune_args(tiny_bert, synthetic_ner, out, "--resume", str(out))) == 2
    assert "no training state" in capsys.readouterr().err


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_length_grouped_batches_cover_every_example_once(batch_size):
    lengths = [(i * 7919) % 50 + 1 for i in range(230)]
    batches = length_grouped_batches(lengths, batch_size, seed=5)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= batch_size for b in batches)
    assert batches == length_grouped_batches(lengths, batch_size, seed=5)
    assert batches != length_grouped_batches(lengths, batch_size, seed=6)
    # within a batch lengths are close: far less spread than in a random batch
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5


def test_patience_stops_when_dev_does_not_improve(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "patient"
    # a learning rate of zero never improves dev: the first evaluation is the best, two more end the run
    args = finetune_args(
        tiny_bert, synthetic_ner, out, "--lr", "0", "--epochs", "10", "--train.patience", "2"
    )
    assert main(args) == 0
    events = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert len(evals) == 3 and [e["improved"] for e in evals] == [True, False, False]
    assert events[-1]["stopped_early"] is True


def test_gradient_accumulation_counts_optimizer_steps(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "accumulate"
    args = finetune_args(
        tiny_bert,
        synthetic_ner,
        out,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--train.grad_accum",
        "4",
        "--output.plot",
        "false",
    )
    assert main(args) == 0
    end = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])
    # 160 sentences in batches of 8: 20 micro-batches, one optimizer step per 4 of them
    assert end["steps"] == 5 and end["train_examples"] == 160
