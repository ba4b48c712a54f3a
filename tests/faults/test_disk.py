"""A full disk or a read-only output directory in the middle of ``bertkit finetune``: one clear error
naming the path, the previous checkpoint (and model, and metrics) intact, and a ``--resume`` once there
is room that ends as the uninterrupted run."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers.modeling_utils
from faults.run_checks import assert_nothing_half_written, assert_same_run, run_args
from safetensors import SafetensorError

from bertkit.cli.app import main
from bertkit.training import loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
# what safetensors (and so save_pretrained) raises when the disk fills: not an OSError
FULL_SAFETENSORS = SafetensorError(
    "Error while serializing: I/O error: No space left on device (os error 28)"
)


def failing(out: Path, nth: int, error: Exception, applies: Callable[..., bool] = lambda *a, **k: True):
    """Wrap a writer so that its nth call (among those ``applies`` to, made once a checkpoint exists)
    raises ``error`` instead of writing."""
    calls = []

    def make(real):
        def write(*args, **kwargs):
            if (out / "checkpoint").is_dir() and applies(*args, **kwargs):
                calls.append(args)
                if len(calls) == nth:
                    raise error
            return real(*args, **kwargs)

        return write

    return make


def is_metrics_tmp(path, *_, **__) -> bool:
    return path.name.startswith(".metrics.json.")


# (the writer, where it lives, its nth call that fails, the error, the path and the words expected)
FULL_DISK = {
    "checkpoint-weights": (
        safetensors.torch,
        "save_file",
        1,
        FULL_SAFETENSORS,
        "checkpoint",
        "previous checkpoint",
    ),
    "checkpoint-state": (torch, "save", 2, FULL, "checkpoint", "previous checkpoint is kept"),
    "best-model": (
        transformers.modeling_utils,
        "safe_save_file",
        2,
        FULL_SAFETENSORS,
        "",
        "the model there is kept",
    ),
}


@pytest.mark.parametrize("writer", list(FULL_DISK))
def test_a_full_disk_is_one_clear_error_and_resume_ends_as_the_uninterrupted_run(
    tiny_bert, synthetic_ner, reference, tmp_path, monkeypatch, capsys, writer
):
    owner, name, nth, error, where, kept = FULL_DISK[writer]
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    monkeypatch.setattr(owner, name, failing(out, nth, error)(getattr(owner, name)))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"bertkit: error: cannot write {out / where if where else out}: " in err
    assert "No space left on device" in err and kept in err
    monkeypatch.undo()
    assert_nothing_half_written(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the failed write cleaned up
    assert main([*args, "--resume", str(out)]) == 0
    assert_same_run(reference, out)


def test_a_full_disk_at_the_final_metrics_keeps_the_earlier_ones(
    tiny_bert, synthetic_ner, reference, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    write_text = failing(out, 1, FULL, is_metrics_tmp)(pathlib.Path.write_text)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"bertkit: error: cannot write {out / 'metrics.json'}: No space left on device" in err
    assert "Traceback" not in err
    monkeypatch.undo()
    assert list(json.loads((out / "metrics.json").read_text())) == ["split", "before"]  # as before training
    assert main([*args, "--resume", str(out)]) == 0
    assert_same_run(reference, out)


def test_a_read_only_output_directory_is_one_clear_error(
    tiny_bert, synthetic_ner, reference, tmp_path, capsys
):
    if not read_only_is_enforced(tmp_path / "probe"):
        pytest.skip("root writes into a read-only directory anyway (see the simulated test below)")
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    real = loop.save_training_state

    def save_then_lock(ckpt_dir, model, state):
        real(ckpt_dir, model, state)
        out.chmod(0o555)  # after the first checkpoint: the best model of step 3 cannot be saved

    try:
        loop.save_training_state = save_then_lock
        assert main(args) == 2
    finally:
        loop.save_training_state = real
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert f"bertkit: error: cannot write {out}: Permission denied; what was there before is kept" in err
    assert "Traceback" not in err
    assert_nothing_half_written(out)
    assert main([*args, "--resume", str(out)]) == 0
    assert_same_run(reference, out)


def test_a_directory_that_refuses_new_files_keeps_the_previous_checkpoint(
    tiny_bert, synthetic_ner, reference, tmp_path, monkeypatch, capsys
):
    """What a read-only directory does to a user who is not root: mkdtemp fails with EACCES."""
    out = tmp_path / "run"
    args = run_args(tiny_bert, synthetic_ner, out)
    refused = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    is_checkpoint = lambda *a, prefix=None, **k: prefix is not None and prefix.startswith(".checkpoint.")  # noqa: E731
    monkeypatch.setattr(tempfile, "mkdtemp", failing(out, 1, refused, is_checkpoint)(tempfile.mkdtemp))
    assert main(args) == 2
    err = capsys.readouterr().err
    expected = (
        f"bertkit: error: cannot write {out / 'checkpoint'}: Permission denied; the previous checkpoint"
    )
    assert expected in err and "Traceback" not in err
    monkeypatch.undo()
    assert checkpoint_step(out) == 2  # step 4's checkpoint was refused
    assert_nothing_half_written(out)
    assert main([*args, "--resume", str(out)]) == 0
    assert_same_run(reference, out)


def checkpoint_step(out: Path) -> int:
    return torch.load(out / "checkpoint" / "training_state.pt", weights_only=True)["loop"]["step"]


def read_only_is_enforced(folder: Path) -> bool:
    """False for root (``os.geteuid() == 0``) or any process with CAP_DAC_OVERRIDE: chmod binds it not."""
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "file").touch()
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)
    return False
