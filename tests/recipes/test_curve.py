"""The learning curve: nested seeded subsets, sizes, a fixed dev, and a tiny curve end to end with resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.config import build_config
from bertkit.errors import BertkitError
from bertkit.recipes import curve as curve_module
from bertkit.recipes.curve import curve, nested_subsets, parse_sizes, read_splits, resolve_sizes, subset_order
from bertkit.recipes.finetune import split_dev
from bertkit.tasks import TASKS

QUICK = {"max_steps": 2, "batch_size": 8, "eval_every": 2, "threads": 1}


def test_subsets_of_one_seed_are_nested_and_the_seed_decides_them():
    sizes = [5, 20, 50, 200]
    first, again, other = (nested_subsets(200, sizes, seed) for seed in (1, 1, 2))
    assert first == again
    assert first[5] != other[5] and first[50] != other[50]
    for small, large in zip(sizes, sizes[1:]):
        assert set(first[small]) < set(first[large])
    assert [len(first[k]) for k in sizes] == sizes and first[200] == list(range(200))
    assert sorted(subset_order(200, 3)) == list(range(200))


def test_sizes_are_parsed_deduplicated_and_checked_against_train():
    assert parse_sizes("100, 300,100,all,ALL") == [100, 300, "all"]
    for bad in ("0", "ten", "100,-3", ""):
        with pytest.raises(BertkitError, match="--sizes"):
            parse_sizes(bad)
    assert resolve_sizes([300, "all", 100], 500) == [100, 300, 500]
    assert resolve_sizes([500, "all"], 500) == [500]  # the same records once
    with pytest.raises(BertkitError, match="--sizes 600: train has only 500 records"):
        resolve_sizes([100, 600], 500)


def ner_config(tiny_bert: Path, data: dict[str, Path], out: Path, with_dev: bool, seed: int = 0):
    files = {"train": str(data["train"])} | ({"dev": str(data["dev"])} if with_dev else {})
    overrides = {
        "model": {"name_or_path": str(tiny_bert), "max_length": 24},
        "data": files,
        "train": {**QUICK, "seed": seed},
        "output": {"dir": str(out)},
    }
    return build_config("ner", TASKS["ner"].config_class, overrides)


def test_without_a_dev_file_dev_is_held_out_once_with_the_base_seed(tiny_bert, synthetic_ner, tmp_path):
    cfg = ner_config(tiny_bert, synthetic_ner, tmp_path / "out", with_dev=False, seed=5)
    task, train, dev = read_splits(cfg)
    expected_train, expected_dev = split_dev(task.read(str(synthetic_ner["train"])), 0.1, 5)
    assert [r.line for r in dev] == [r.line for r in expected_dev]
    assert [r.line for r in train] == [r.line for r in expected_train]


def test_a_tiny_curve_end_to_end_and_its_rerun(tiny_bert, synthetic_ner, tmp_path, monkeypatch, capsys):
    out = tmp_path / "curve"
    cfg = ner_config(tiny_bert, synthetic_ner, out, with_dev=True, seed=3)
    summary = curve(cfg, [40, "all"], seeds=2)
    n_train = 160  # the synthetic NER train file
    assert [row["n"] for row in summary["sizes"]] == [40, n_train] and summary["split"] == "dev"
    for row in summary["sizes"]:
        scores = {}
        for seed in (3, 4):
            folder = out / f"size-{row['n']}" / f"seed-{seed}"
            scores[str(seed)] = json.loads((folder / "metrics.json").read_text())["after"]["f1"]
            end = [json.loads(line) for line in (folder / "train_log.jsonl").open()][-1]
            assert end["event"] == "train_end" and end["train_records"] == row["n"]
            assert not list(folder.glob("*.safetensors")) and (folder / "run.yaml").is_file()
        assert row["per_seed"] == scores
        assert row["mean"] == pytest.approx(sum(scores.values()) / 2)
        assert row["std"] == pytest.approx(abs(scores["3"] - scores["4"]) / 2**0.5)
    assert json.loads((out / "curve.json").read_text()) == summary
    assert (out / "curve.md").read_text().count("\n| ") == 3 and (out / "curve.png").is_file()
    subsets = json.loads((out / "subsets.json").read_text())["subsets"]
    assert set(subsets["3"]["40"]) < set(range(n_train)) and subsets["3"]["40"] != subsets["4"]["40"]

    # a rerun finds every run finished and trains nothing; an unfinished run is redone
    (out / "size-40" / "seed-4" / "metrics.json").write_text(json.dumps({"split": "dev", "before": {}}))
    calls = []
    real = curve_module.one_run
    monkeypatch.setattr(curve_module, "one_run", lambda *a: calls.append(a[1]) or real(*a))
    again = curve(cfg, [40, "all"], seeds=2)
    assert calls == [out / "size-40" / "seed-4"]
    assert again["sizes"][1] == summary["sizes"][1]
    assert "finished before, skipped" in capsys.readouterr().out
