"""`bertkit finetune`: a bad number or model is one clear line (exit 2) before anything is written."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
from conftest import ner_command

from bertkit.cli.app import main


def run_finetune(model, data, out, capsys, *flags: str) -> str:
    """Run `bertkit finetune ner`; check it exits 2 without creating OUT; return stderr."""
    assert main(ner_command(model, data, out, *flags)) == 2
    assert not out.exists(), "a refused run must not leave an output directory behind"
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "train.epochs (--epochs) must be > 0, got 0.0"),
        (["--epochs", "-1"], "train.epochs (--epochs) must be > 0, got -1.0"),
        (["--batch-size", "0"], "train.batch_size (--batch-size) must be >= 1, got 0"),
        (["--batch-size", "-4"], "train.batch_size (--batch-size) must be >= 1, got -4"),
        (["--train.grad_accum", "0"], "train.grad_accum must be >= 1, got 0"),
        (["--lr", "-1"], "train.lr (--lr) must be >= 0, got -1.0"),
        (["--train.warmup-ratio", "2"], "train.warmup_ratio must be in [0, 1], got 2.0"),
        (["--model.dropout", "1"], "model.dropout must be in [0, 1), got 1.0"),
        (
            ["--max-length", "16", "--stride", "16"],
            "model.stride (--stride) must be below model.max_length (16), got 16",
        ),
    ],
)
def test_bad_number_is_one_line(tiny_bert, synthetic_ner, tmp_path, capsys, flags, message):
    err = run_finetune(tiny_bert, synthetic_ner, tmp_path / "out", capsys, *flags)
    assert err == f"bertkit: error: {message}\n"


def test_max_length_beyond_the_model_positions_is_refused_before_training(
    tiny_bert, synthetic_ner, tmp_path, capsys
):
    # before: a RuntimeError ("expanded size ...") once a sentence was long enough, silence otherwise
    err = run_finetune(tiny_bert, synthetic_ner, tmp_path / "out", capsys, "--max-length", "256")
    assert err == (
        f"bertkit: error: --max-length 256 is more than {tiny_bert} takes (128 positions); "
        "pass --max-length 128 or less\n"
    )


def test_missing_model_folder(synthetic_ner, tmp_path, capsys):
    missing = tmp_path / "no" / "such-model"
    err = run_finetune(missing, synthetic_ner, tmp_path / "out", capsys)
    assert err == f"bertkit: error: --model {missing}: no such model directory\n"


def test_model_that_is_a_file(tiny_bert, synthetic_ner, tmp_path, capsys):
    file = tiny_bert / "config.json"
    err = run_finetune(file, synthetic_ner, tmp_path / "out", capsys)
    assert err == f"bertkit: error: --model {file} is a file; it takes a model directory or a hub id\n"


def test_hub_id_that_cannot_be_loaded_offline(synthetic_ner, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never touch the network
    err = run_finetune("bertkit-test/no-such-model", synthetic_ner, tmp_path / "out", capsys)
    assert err.startswith("bertkit: error: cannot load model bertkit-test/no-such-model (")
    assert "couldn't connect" in err and err.count("\n") == 1


def test_a_task_option_that_does_not_fit_is_refused_before_the_output_directory(tiny_bert, tmp_path, capsys):
    squad = tmp_path / "train.json"  # never read: the options are refused first
    squad.write_text('{"version": "1.1", "data": []}', encoding="utf-8")
    out = tmp_path / "out"
    command = ["finetune", "qa", "--model", str(tiny_bert), "--train", str(squad), "--out", str(out)]
    assert main([*command, "--max-length", "32", "--max-question-length", "8", "--doc-stride", "21"]) == 2
    assert not out.exists(), "a refused run must not leave an output directory behind"
    assert "--doc-stride 21 (the overlap of consecutive windows) must be below the 21 context tokens" in (
        capsys.readouterr().err
    )
