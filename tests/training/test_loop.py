"""The training loop: a tiny model learns a tiny tagging pattern, and a resumed run ends exactly as an
uninterrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import after_step, crash, ner_command
from safetensors.torch import load_file

from bertkit import atomic
from bertkit.cli.app import main
from bertkit.config import TrainConfig
from bertkit.data.batching import epoch_batches, length_grouped_batches
from bertkit.data.features import InMemoryFeatures, write_sharded
from bertkit.errors import BertkitError
from bertkit.training import loop
from bertkit.training.runtime import Runtime
from bertkit.training.train_log import TrainLog


def finetune_args(tiny_bert: Path, data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    quick = ["--batch-size", "16", "--max-length", "16", "--stride", "4", "--lr", "3e-3"]
    # a fixed thread count: the governor would change it when another process is busy, and a matmul
    # split over other threads rounds differently, so runs compared bit for bit would differ
    fixed = ["--train.adapt_threads", "false"]
    return ner_command(tiny_bert, data, out, *quick, *fixed, *extra)


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_tiny_model_learns_the_pattern_and_loss_falls(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "run"
    # a pattern this plain is learnt by any seed at a high learning rate: no seed was hunted for
    assert main(finetune_args(tiny_bert, synthetic_ner, out, "--epochs", "6", "--lr", "5e-3")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["after"]["f1"] > 0.9
    assert metrics["before"]["f1"] < 0.5
    log = events(out)
    losses = [e["loss"] for e in log if e["event"] == "step"]
    assert losses[-1] < losses[0] / 5
    dev_f1 = [e["f1"] for e in log if e["event"] == "eval"]
    assert max(dev_f1) > 0.9 and len(dev_f1) == 6  # one evaluation per epoch
    end = log[-1]
    assert end["event"] == "train_end" and end["truncated_tokens"] == 0 and end["train_examples_per_s"] > 0


def test_resumed_run_ends_with_the_same_weights(tiny_bert, synthetic_ner, tmp_path, monkeypatch):
    args = ["--train.max_steps", "12", "--train.eval_every", "3"]
    full = tmp_path / "full"
    assert main(finetune_args(tiny_bert, synthetic_ner, full, *args)) == 0

    broken = tmp_path / "broken"
    after_step(monkeypatch, 8, crash)  # the last checkpoint is the one of step 6
    assert main(finetune_args(tiny_bert, synthetic_ner, broken, *args)) == 130
    saved = torch.load(broken / "checkpoint" / "training_state.pt", weights_only=True)
    assert saved["loop"]["step"] == 6
    monkeypatch.undo()
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


# --- resume: exact weights, a clean log, refused when the run differs ---------------------------------

ACCUM = ["--train.max_steps", "10", "--train.grad_accum", "3", "--train.save_every", "3"]
ACCUM += ["--train.eval_every", "4", "--train.log_every", "1", "--output.plot", "false"]
# 160 sentences in batches of 16 are 10 micro-batches an epoch: groups of 3, 3, 3 and a short one of 1


class SimulatedKill(BaseException):
    """Where a kill -9 would strike: a BaseException, so no handler on the way runs."""


@pytest.fixture(scope="module")
def reference(tiny_bert, synthetic_ner, tmp_path_factory) -> Path:
    """An uninterrupted run with gradient accumulation, checkpoints every 3 steps and 3 evaluations."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(finetune_args(tiny_bert, synthetic_ner, out, *ACCUM)) == 0
    return out


def assert_same_weights(a: Path, b: Path) -> None:
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def checkpoint_step(out: Path) -> int:
    return torch.load(out / "checkpoint" / "training_state.pt", weights_only=True)["loop"]["step"]


def assert_log_of_one_run(out: Path, steps: int, evals: list[int]) -> None:
    log = events(out)
    assert [e["step"] for e in log if e["event"] == "step"] == list(range(1, steps + 1))
    assert [e["step"] for e in log if e["event"] == "eval"] == evals
    assert [e["event"] for e in log].count("train_end") == 1 and log[-1]["event"] == "train_end"


def test_resume_dir_alone_continues_from_its_run_yaml(
    tiny_bert, synthetic_ner, tmp_path, monkeypatch, capsys
):
    # run.yaml holds what the task resolved from the data (tag scheme "auto" -> "iob2"), the
    # checkpoint's fingerprint what was given: `--resume DIR` alone must match both
    args = ["--train.max_steps", "12", "--train.eval_every", "3"]
    full = tmp_path / "full"
    assert main(finetune_args(tiny_bert, synthetic_ner, full, *args)) == 0
    broken = tmp_path / "broken"
    after_step(monkeypatch, 8, crash)
    assert main(finetune_args(tiny_bert, synthetic_ner, broken, *args)) == 130
    monkeypatch.undo()
    assert "tag_scheme: iob2" in (broken / "run.yaml").read_text()
    assert main(["-q", "finetune", "ner", "--resume", str(broken)]) == 0
    a = load_file(str(full / "checkpoint" / "model.safetensors"))
    b = load_file(str(broken / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    capsys.readouterr()
    assert main(["-q", "finetune", "ner", "--resume", str(broken), "--ner.tag_scheme", "bioes"]) == 2
    # the resumed run's checkpoint was given iob2 (its run.yaml); another scheme is still refused
    assert "ner.tag_scheme: 'iob2' in the checkpoint, 'bioes' now" in capsys.readouterr().err


def test_resume_with_gradient_accumulation_gives_the_same_weights_and_log(
    tiny_bert, synthetic_ner, reference, tmp_path, monkeypatch
):
    broken = tmp_path / "broken"
    after_step(monkeypatch, 8, crash)  # the last checkpoint is the one of step 6
    assert main(finetune_args(tiny_bert, synthetic_ner, broken, *ACCUM)) == 130
    assert checkpoint_step(broken) == 6
    assert [e["step"] for e in events(broken) if e["event"] == "step"][-1] == 8
    monkeypatch.undo()
    assert main(finetune_args(tiny_bert, synthetic_ner, broken, *ACCUM, "--resume", str(broken))) == 0
    assert_same_weights(reference, broken)
    assert_log_of_one_run(broken, 10, [4, 8, 10])  # steps 7 and 8 once, not twice
    assert_log_of_one_run(reference, 10, [4, 8, 10])
    assert checkpoint_step(broken) == 10


def test_sigterm_saves_a_checkpoint_at_that_step_and_resume_gives_the_same_weights(
    tiny_bert, synthetic_ner, reference, tmp_path, monkeypatch, capsys
):
    stopped = tmp_path / "stopped"
    after_step(monkeypatch, 5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert main(finetune_args(tiny_bert, synthetic_ner, stopped, *ACCUM)) == 143
    assert "SIGTERM at step 5" in capsys.readouterr().err
    assert checkpoint_step(stopped) == 5  # not a save_every multiple: saved because of the signal
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the loop put the handler back
    monkeypatch.undo()
    assert main(finetune_args(tiny_bert, synthetic_ner, stopped, *ACCUM, "--resume", str(stopped))) == 0
    assert_same_weights(reference, stopped)
    assert_log_of_one_run(stopped, 10, [4, 8, 10])


@pytest.mark.parametrize("kill_at", [4, 5, 7])  # before the old one moves aside, between renames, at cleanup
def test_a_kill_during_a_checkpoint_write_then_resume_gives_the_same_weights(
    tiny_bert, synthetic_ner, reference, tmp_path, monkeypatch, kill_at
):
    killed = tmp_path / "killed"
    calls = []

    def dying(real):
        def call(*args, **kwargs):
            calls.append(real.__name__)
            if len(calls) == kill_at:
                raise SimulatedKill
            return real(*args, **kwargs)

        return call

    real_save = loop.save_training_state

    def save(ckpt_dir, model, state):
        if state["loop"]["step"] == 9:  # the write of step 9's checkpoint dies at its kill_at-th step
            monkeypatch.setattr(atomic.os, "fsync", dying(os.fsync))
            monkeypatch.setattr(atomic.os, "replace", dying(os.replace))
            monkeypatch.setattr(atomic.shutil, "rmtree", dying(shutil.rmtree))
        real_save(ckpt_dir, model, state)

    monkeypatch.setattr(loop, "save_training_state", save)
    with pytest.raises(SimulatedKill):
        main(finetune_args(tiny_bert, synthetic_ner, killed, *ACCUM))
    monkeypatch.undo()
    assert main(finetune_args(tiny_bert, synthetic_ner, killed, *ACCUM, "--resume", str(killed))) == 0
    assert_same_weights(reference, killed)
    assert_log_of_one_run(killed, 10, [4, 8, 10])
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".")]  # orphans cleaned up


def test_resume_with_another_batch_size_or_data_is_refused_naming_what_differs(
    tiny_bert, synthetic_ner, reference, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    args = [*ACCUM, "--resume", str(run)]
    before = (run / "run.yaml").read_bytes()
    assert main(finetune_args(tiny_bert, synthetic_ner, run, *args, "--batch-size", "8")) == 2
    err = capsys.readouterr().err
    assert "train.batch_size: 16 in the checkpoint, 8 now" in err
    changed = dict(synthetic_ner, train=tmp_path / "train.conll")
    changed["train"].write_text(synthetic_ner["train"].read_text() + "paris\tB-LOC\n\n")
    assert main(finetune_args(tiny_bert, changed, run, *args)) == 2
    assert "file.train" in capsys.readouterr().err
    assert (run / "run.yaml").read_bytes() == before  # refused before anything was written


def test_resume_into_another_out_is_one_clear_error(tiny_bert, synthetic_ner, reference, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    assert main(finetune_args(tiny_bert, synthetic_ner, elsewhere, *ACCUM, "--resume", str(reference))) == 2
    assert "--out must be that directory or omitted" in capsys.readouterr().err
    assert not elsewhere.exists()


# --- the output directory ----------------------------------------------------------------------------

QUICK = ["--train.max_steps", "2", "--output.plot", "false"]


def test_a_fresh_run_over_an_earlier_one_is_refused_and_overwrite_starts_clean(
    tiny_bert, synthetic_ner, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main(finetune_args(tiny_bert, synthetic_ner, out, *QUICK)) == 0
    (out / "confusion.png").write_bytes(b"a plot of another task")
    (out / ".checkpoint.x1.tmp").mkdir()  # what a kill during a checkpoint write leaves
    assert main(finetune_args(tiny_bert, synthetic_ner, out, *QUICK)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "confusion.png").exists()
    assert main(finetune_args(tiny_bert, synthetic_ner, out, *QUICK, "--overwrite")) == 0
    assert not (out / "confusion.png").exists() and not (out / ".checkpoint.x1.tmp").exists()
    assert [e["event"] for e in events(out)].count("train_end") == 1


def test_overwrite_refuses_a_directory_that_holds_no_run(tiny_bert, synthetic_ner, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not bertkit's")
    assert main(finetune_args(tiny_bert, synthetic_ner, out, *QUICK, "--overwrite")) == 2
    assert "holds no bertkit run" in capsys.readouterr().err
    assert (out / "notes.txt").exists()


def test_out_that_is_a_file_is_one_clear_error(tiny_bert, synthetic_ner, tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    assert main(finetune_args(tiny_bert, synthetic_ner, out, *QUICK)) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_train_log_resume_cuts_back_to_the_step_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "train_log.jsonl"
    lines = [{"event": "step", "step": s} for s in (1, 2, 3)] + [{"event": "train_end", "steps": 3}]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"event": "step", "st')
    log = TrainLog(path)
    log.start(resume_step=2)
    log.write("step", step=3)
    log.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"event": "step", "step": 1},
        {"event": "step", "step": 2},
        {"event": "step", "step": 3},
    ]
    fresh = TrainLog(path)
    fresh.start()
    fresh.close()
    assert path.read_text() == ""


# --- fit on a toy task: accumulation arithmetic, checkpoints without evaluation, feature sources -------


@dataclass
class Point:
    input_ids: list[int]  # only its length matters: it groups batches
    x: float
    y: float


class LineTask:
    """Fit y = w x: one weight, a mean squared error over the batch's examples."""

    main_metric = "score"

    def collate(self, features):
        return {"x": torch.tensor([[f.x] for f in features]), "y": torch.tensor([[f.y] for f in features])}

    def forward(self, model, batch):
        return model(batch["x"])

    def loss(self, outputs, batch):
        return ((outputs - batch["y"]) ** 2).mean()


POINTS = [Point([0] * (i % 3 + 1), x=float(i + 1), y=2.0 * (i + 1) + 1) for i in range(5)]
CPU = Runtime(torch.device("cpu"), "fp32")


def toy_config(**changes) -> TrainConfig:
    base = {"epochs": 2.0, "lr": 1e-3, "batch_size": 2, "weight_decay": 0.0, "warmup_ratio": 0.0}
    return TrainConfig(**{**base, "max_grad_norm": 0.0, "seed": 1, **changes})


class RecordingSGD(torch.optim.SGD):
    """Plain SGD that keeps the weight and the gradient of every step (AdamW would hide a scale)."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(self, closure=None):
        (p,) = self.param_groups[0]["params"]
        self.seen.append((p.detach().clone(), p.grad.detach().clone()))
        return super().step(closure)


def line_model() -> torch.nn.Module:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    return model


def test_a_short_accumulation_group_is_scaled_by_its_real_size(monkeypatch):
    optimizers = []
    monkeypatch.setattr(
        loop,
        "make_optimizer",
        lambda model, lr, wd: optimizers.append(RecordingSGD(model.parameters(), lr)) or optimizers[-1],
    )
    cfg = toy_config(grad_accum=2)
    state = loop.fit(line_model(), LineTask(), POINTS, cfg, CPU)
    lengths = [len(p.input_ids) for p in POINTS]
    groups = []  # 5 points in batches of 2, 2 and 1: per epoch a group of 2 batches and a short one of 1
    for epoch in range(2):
        batches = epoch_batches(lengths, cfg.batch_size, cfg.seed + epoch)
        groups += [[i for b in list(batches)[k : k + 2] for i in b] for k in range(0, len(batches), 2)]
    assert state.step == len(groups) == 4 and sorted(len(g) for g in groups[:2]) in ([1, 4], [2, 3])
    for (weight, grad), group in zip(optimizers[0].seen, groups):
        x = torch.tensor([[POINTS[i].x] for i in group])
        y = torch.tensor([[POINTS[i].y] for i in group])
        w = weight.clone().requires_grad_(True)
        ((x @ w.T - y) ** 2).mean().backward()  # the mean over the group's examples
        assert torch.allclose(grad, w.grad, rtol=1e-5), (group, grad, w.grad)


def test_checkpoints_every_save_every_steps_without_evaluation(tmp_path, monkeypatch):
    saved_at = []
    real_save = loop.save_training_state
    monkeypatch.setattr(
        loop, "save_training_state", lambda d, m, s: saved_at.append(s["loop"]["step"]) or real_save(d, m, s)
    )
    cfg = toy_config(max_steps=5, save_every=2)
    state = loop.fit(
        line_model(), LineTask(), POINTS, cfg, CPU, evaluate=None, checkpoint_dir=tmp_path / "ckpt"
    )
    assert saved_at == [2, 4, 5]  # every 2 steps and at the end, with no evaluation at all
    assert state.best_metric is None and state.history == []  # the caller saves the final model


def test_a_sharded_source_trains_like_a_list_and_resume_over_other_features_is_refused(tmp_path):
    cfg = toy_config(max_steps=3)
    a, b = line_model(), line_model()
    loop.fit(a, LineTask(), POINTS, cfg, CPU)
    sharded = write_sharded(iter(POINTS), tmp_path / "features", "points-v1", shard_features=2)
    loop.fit(b, LineTask(), sharded, cfg, CPU, checkpoint_dir=tmp_path / "ckpt")
    assert torch.equal(a.weight, b.weight)
    again = toy_config(max_steps=4, resume=str(tmp_path / "ckpt"))
    with pytest.raises(BertkitError, match="other training features"):
        loop.fit(line_model(), LineTask(), InMemoryFeatures(POINTS, "points-v2"), again, CPU)
    state = loop.fit(line_model(), LineTask(), sharded, again, CPU)
    assert state.step == 3  # the saved run had 3 steps: its schedule, not this config's 4, is kept
