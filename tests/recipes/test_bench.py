from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import sentence, synthetic_sentence, write_conll, write_rows

from bertkit.errors import BertkitError
from bertkit.recipes.bench import (
    SUITES,
    benchmarks_folder,
    flops_per_token,
    format_table,
    references,
    suite_command,
    suite_rows,
)
from bertkit.training.runtime import bf16_is_fast

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
MACHINE = {"cpu": "Some CPU (amx_bf16)", "matmul_gflops": {"float32": 200.0, "bfloat16": 800.0}}


def test_flops_per_token_by_hand():
    # 2 layers, hidden 4, intermediate 8, 10 tokens: weights 4*16 + 2*32 = 128 per layer, forward 2 x
    # that = 256, attention 4 * 10 * 4 = 160; x 3 for the backward, x 2 layers
    config = {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2}
    assert flops_per_token(config, 10) == 3 * 2 * (256 + 160)


def test_suite_rows_give_ratios_to_each_reference_and_an_mfu_estimate():
    result = {
        "machine": MACHINE,
        "rows": [
            {"variant": "bertkit", "train_examples_per_s": 30.0, "f1": 0.5, "peak_rss_mb": 900,
             "tokens_per_example": 10.0},
            {"variant": "B1", "train_examples_per_s": 10.0, "f1": 0.49, "peak_rss_mb": 1000},
            {"variant": "B1-bf16", "train_examples_per_s": 20.0, "f1": 0.48, "peak_rss_mb": 950},
        ],
    }  # fmt: skip
    config = {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2}
    rows = {r["variant"]: r for r in suite_rows("ner", SUITES["ner"], result, config)}
    assert rows["bertkit"]["ratios"] == {"B1-bf16": 1.5, "B1": 3.0}
    assert rows["B1"]["ratios"] == {}  # references are not compared with each other
    # MFU of the same work: examples/s x tokens x FLOPs per token over the bf16 peak
    assert rows["B1-bf16"]["mfu"] == pytest.approx(20.0 * 10 * 3 * 2 * 416 / 800e9)
    assert rows["bertkit"]["quality"] == 0.5 and rows["bertkit"]["peak_mb"] == 900
    table = format_table(list(rows.values()), MACHINE)
    assert "x1.50 B1-bf16 x3.00 B1" in table and "Some CPU (amx_bf16)" in table
    frozen = suite_rows("ner-frozen", SUITES["ner-frozen"], result, config)
    assert all(r["mfu"] is None for r in frozen)  # a frozen step does less than the full step's FLOPs


def test_benchmarks_folder_is_found_or_named_in_the_error(tmp_path, monkeypatch):
    assert benchmarks_folder(str(BENCHMARKS)) == BENCHMARKS
    with pytest.raises(BertkitError, match="no benchmark scripts in .*nowhere"):
        benchmarks_folder(str(tmp_path / "nowhere"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """WNUT-17's and SST-2's file layout, filled with the synthetic patterns."""
    rng = random.Random(3)
    wnut = tmp_path / "data" / "wnut17"
    wnut.mkdir(parents=True)
    files = {"wnut17train.conll": 120, "emerging.dev.conll": 30, "emerging.test.annotated": 30}
    for name, n in files.items():
        write_conll(wnut / name, [synthetic_sentence(rng, rng.randint(3, 10)) for _ in range(n)])
    sst2 = tmp_path / "data" / "glue_sst2"
    sst2.mkdir()
    for name, n in (("train.tsv", 120), ("dev.tsv", 40)):
        rows = [[sentence(rng, names := rng.randint(0, 1), 1 - names), str(names)] for _ in range(n)]
        write_rows(sst2 / name, ["sentence", "label"], rows)
    return tmp_path / "data"


def test_bench_quick_prints_one_table_of_bertkit_against_the_reference(tiny_bert, data_dir, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, "-m", "bertkit.cli.app", "bench", "--quick", "--suites", "ner,classify",
        "--model", str(tiny_bert), "--data-dir", str(data_dir), "--benchmarks", str(BENCHMARKS),
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    saved = json.loads(out.read_text())
    rows = {(r["suite"], r["variant"]): r for r in saved["rows"]}
    # the informed user's reference: Trainer's bf16 only where this CPU has bf16 matrix units
    reference = "B1-bf16" if bf16_is_fast(torch.device("cpu")) else "B1"
    assert set(rows) == {
        ("ner", "bertkit"),
        ("ner", reference),
        ("classify", "bertkit"),
        ("classify", reference),
    }
    for suite in ("ner", "classify"):
        ours, ref = rows[(suite, "bertkit")], rows[(suite, reference)]
        assert ours["ratios"] == {reference: pytest.approx(ours["throughput"] / ref["throughput"])}
        assert 0 <= ours["quality"] <= 1 and ours["peak_mb"] > 0 and 0 < ours["mfu"] < 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("CPU: ") for line in lines)
    assert sum(line.split()[:2] == ["ner", "bertkit"] for line in lines) == 1
    # each suite's own output stays beside the table
    assert (tmp_path / "bench-logs" / "ner.log").is_file()


def test_without_bf16_units_fp32_trainer_is_the_reference_and_mfu_uses_the_fp32_peak():
    ner, pretrain = SUITES["ner"], SUITES["pretrain"]
    assert references(ner, bf16=True) == ("B1-bf16", "B1")
    assert references(ner, bf16=False) == ("B1",)
    assert references(pretrain, bf16=False) == ("B1-bf16",)  # its script turns bf16 off itself
    command = suite_command(ner, Path("benchmarks"), quick=True, model=None, bf16=False)
    assert command[command.index("--variants") + 1] == "bertkit,B1"
    result = {
        "machine": MACHINE,
        "rows": [
            {"variant": "bertkit", "train_examples_per_s": 30.0, "f1": 0.5, "tokens_per_example": 10},
            {"variant": "B1", "train_examples_per_s": 10.0, "f1": 0.49},
        ],
    }
    config = {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1}
    rows = {r["variant"]: r for r in suite_rows("ner", ner, result, config, bf16=False)}
    assert rows["bertkit"]["ratios"] == {"B1": 3.0}
    flops = 3 * (2 * (4 * 64 + 2 * 128) + 4 * 10 * 8)
    assert rows["bertkit"]["mfu"] == pytest.approx(30.0 * 10 * flops / 200e9)  # fp32 peak, not bf16's
