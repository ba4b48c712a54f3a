"""kill -9 and SIGTERM at chosen moments of a real ``bertkit finetune`` process, then ``--resume``.

Each kill leaves nothing half written under a final name, and the resumed run ends with the weights,
checkpoint, ``metrics.json`` and log (timings aside) of the uninterrupted run. SIGTERM, what a cluster
scheduler sends, saves a checkpoint at the step it arrives in and exits 143 with one line, no traceback.
"""

from __future__ import annotations

import re
import signal

import pytest
import torch
from faults.kill_points import KILL_POINTS, run_until
from faults.run_checks import TIMING, assert_nothing_half_written, assert_same_run, events, run_args

from bertkit.cli.app import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (kill point, which of its calls made once a checkpoint exists); see kill_points.py and run_checks.RUN
KILLS = [
    ("mid-step", 7),  # step 6's first micro-batch (step 5 is calls 5-6): back to the step-4 checkpoint
    ("mid-evaluation", 4),  # dev has 3 batches: the second one of step 6's evaluation
    ("mid-checkpoint-weights", 2),  # step 6's checkpoint, its model.safetensors half written
    ("mid-checkpoint-state", 3),  # step 8's checkpoint, its training_state.pt half written
    ("between-checkpoint-renames", 2),  # step 6's: the step-4 checkpoint aside, step 6's not in place
    ("after-checkpoint", 1),  # right after step 4's checkpoint, before step 5 starts
    ("mid-model-save", 2),  # step 6's best model, its model.safetensors half written (step 3's there)
    ("mid-metrics-write", 1),  # training done, the final metrics.json half written
]


def test_every_kill_point_is_tried():
    assert sorted(point for point, _ in KILLS) == sorted(KILL_POINTS)


@pytest.mark.parametrize(("point", "nth"), KILLS, ids=[point for point, _ in KILLS])
def test_a_kill_then_resume_ends_as_the_uninterrupted_run(
    tiny_bert, synthetic_ner, reference, tmp_path, capsys, point, nth
):
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    outcome = run_until(args, point, nth, signal.SIGKILL, out, tmp_path / "logs")
    assert outcome.signal == signal.SIGKILL, outcome.stderr  # the kill point was reached
    assert_nothing_half_written(out)
    capsys.readouterr()
    assert main([*args, "--resume", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert_same_run(reference, out)


def test_a_kill_before_the_first_checkpoint_leaves_nothing_to_resume_and_overwrite_starts_over(
    tiny_bert, synthetic_ner, reference, tmp_path, capsys
):
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    # the first model forward in eval mode is the untrained model's test evaluation, before training
    outcome = run_until(args, "mid-evaluation", 1, signal.SIGKILL, out, tmp_path / "logs", anytime=True)
    assert outcome.signal == signal.SIGKILL
    assert not (out / "checkpoint").exists()
    capsys.readouterr()
    assert main([*args, "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"no training state to resume from (no {out / 'checkpoint'}/training_state.pt)" in err
    assert "Traceback" not in err
    assert main([*args, "--overwrite"]) == 0
    assert_same_run(reference, out)


def checkpoint_step(out) -> int:
    return torch.load(out / "checkpoint" / "training_state.pt", weights_only=True)["loop"]["step"]


# (point, nth call, counted from the start or once a checkpoint exists, the steps it may stop at: the
# step the signal lands in, or the next one for a signal that lands while a checkpoint is being written)
TERMS = [
    ("mid-step", 1, True, {1}),  # the very first micro-batch: no checkpoint yet, so one is made
    ("mid-step", 8, False, {6}),  # step 6's second micro-batch
    ("mid-evaluation", 4, False, {6}),
    ("mid-checkpoint-state", 2, False, {6, 7}),  # while step 6's checkpoint is written
    ("mid-model-save", 2, False, {6}),
]


@pytest.mark.parametrize(("point", "nth", "anytime", "steps"), TERMS, ids=[f"{t[0]}-{t[1]}" for t in TERMS])
def test_sigterm_saves_a_checkpoint_exits_cleanly_and_resume_ends_the_same(
    tiny_bert, synthetic_ner, reference, tmp_path, capsys, point, nth, anytime, steps
):
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    outcome = run_until(args, point, nth, signal.SIGTERM, out, tmp_path / "logs", anytime=anytime)
    assert (outcome.signal, outcome.code) == (None, 143), outcome.stderr
    assert "Traceback" not in outcome.stderr
    said = re.findall(r"bertkit: [^\r\n]*", outcome.stderr)  # the progress bar may share its line
    step = checkpoint_step(out)
    assert step in steps
    assert said == [
        f"bertkit: stopped by SIGTERM at step {step}; the training state is saved in "
        f"{out / 'checkpoint'}; continue with the same command and --resume {out}"
    ]
    assert_nothing_half_written(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # a clean exit leaves no temporary
    capsys.readouterr()
    assert main([*args, "--resume", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert_same_run(reference, out)


def test_the_logged_loss_after_a_resume_is_the_uninterrupted_runs(
    tiny_bert, synthetic_ner, reference, tmp_path
):
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    assert (
        run_until(args, "after-checkpoint", 2, signal.SIGKILL, out, tmp_path / "logs").signal
        == signal.SIGKILL
    )
    assert main([*args, "--resume", str(out)]) == 0
    assert events(out, TIMING) == events(reference, TIMING)


def test_the_sigterm_message_starts_its_own_line(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    outcome = run_until(args, "mid-step", 1, signal.SIGTERM, out, tmp_path / "logs", anytime=True)
    assert outcome.code == 143
    assert re.search(r"(^|\n)bertkit: stopped by SIGTERM", outcome.stderr)
