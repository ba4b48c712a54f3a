"""``bertkit curve`` and ``bertkit select`` from the command line: outputs, refusals as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import bertkit_command
from inference.saved_models import save_untrained

from bertkit.cli.app import main
from bertkit.tasks import make_task

QUICK = ["--steps", "2", "--batch-size", "8", "--max-length", "24", "--train.threads", "1"]


def test_curve_writes_its_table_and_keeps_models_when_asked(tiny_bert, synthetic_ner, tmp_path):
    out = tmp_path / "curve"
    flags = [*QUICK, "--sizes", "30,30", "--seeds", "1", "--keep-models"]
    assert main(bertkit_command("curve", "ner", tiny_bert, synthetic_ner, out, *flags, test=False)) == 0
    summary = json.loads((out / "curve.json").read_text())
    assert [row["n"] for row in summary["sizes"]] == [30] and list(summary["sizes"][0]["per_seed"]) == ["42"]
    assert (out / "size-30" / "seed-42" / "model.safetensors").is_file()
    assert "| 30 |" in (out / "curve.md").read_text()


def test_curve_refuses_a_size_beyond_train_before_any_run(tiny_bert, synthetic_ner, tmp_path, capsys):
    out = tmp_path / "curve"
    command = bertkit_command("curve", "ner", tiny_bert, synthetic_ner, out, *QUICK, "--sizes", "50,500")
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "bertkit: error: --sizes 500: train has only 160 records (after any dev hold-out); "
        "use 'all' for the whole set"
    )
    assert not out.exists()


def test_select_writes_n_conll_sentences_and_their_scores(tiny_bert, synthetic_ner, tmp_path):
    model = save_untrained("ner", tiny_bert, tmp_path / "model")
    pool = tmp_path / "pool.conll"
    pool.write_text("\n".join(line.split("\t")[0] for line in synthetic_ner["dev"].read_text().split("\n")))
    out = tmp_path / "next.conll"
    command = [
        "-q",
        "select",
        "--model",
        str(model),
        "--input",
        str(pool),
        "--out",
        str(out),
        "--budget",
        "5",
    ]
    assert main([*command, "--strategy", "margin", "--threads", "1"]) == 0
    from bertkit.inference.predictor import saved_run_config
    from bertkit.modeling.load import load_tokenizer

    cfg = saved_run_config(model)
    chosen = make_task(cfg, load_tokenizer(cfg.model)).read(str(out))
    assert len(chosen) == 5 and all(set(r.tags) == {"O"} for r in chosen)
    scores = [json.loads(line) for line in Path(f"{out}.scores.jsonl").read_text().splitlines()]
    assert [s["rank"] for s in scores] == [1, 2, 3, 4, 5] and all(0 <= s["score"] <= 1 for s in scores)


def test_select_refuses_other_families_and_a_bad_budget(tiny_bert, tmp_path, capsys):
    model = save_untrained("qa", tiny_bert, tmp_path / "qa")
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"question": "who", "context": "bob went home"}\n')
    base = ["-q", "select", "--model", str(model), "--input", str(pool), "--out", str(tmp_path / "o")]
    capsys.readouterr()
    assert main([*base, "--budget", "0"]) == 2
    assert capsys.readouterr().err.strip() == "bertkit: error: --budget must be at least 1, got 0"
    assert main([*base, "--budget", "1", "--threads", "1"]) == 2
    assert "select supports classify, ner models; this model is a 'qa' model" in capsys.readouterr().err
