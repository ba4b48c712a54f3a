"""``bertkit finetune`` under torchrun: 2 CPU processes (gloo) x batch b take the steps of 1 process x
batch 2b, evaluate to the same metrics, write one set of outputs, and survive a killed worker with
``torchrun --max-restarts 1``; ``--nproc`` starts torchrun."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import bertkit_command, make_splits, make_tiny_bert, sentence
from safetensors.torch import load_file

from bertkit.cli.launch import without_nproc

KILLER = Path(__file__).with_name("kill_worker.py")
# fp32 and no dropout: the two runs must agree to float rounding, not to the statistics of dropout.
# 57 training rows in global batches of 8: the last batch has 1 row, so rank 1's share of it is
# empty; 31 dev rows split 16/15 between the ranks; grad_accum 2 exercises DDP's no_sync
FLAGS = [
    "--precision",
    "fp32",
    "--model.dropout",
    "0",
    "--max-length",
    "32",
    "--lr",
    "3e-3",
    "--epochs",
    "3",
    "--train.grad_accum",
    "2",
    "--train.save_every",
    "3",
    "--seed",
    "5",
    "--train.threads",
    "1",
]


def city_row(rng: random.Random) -> list[str]:
    has_city = rng.random() < 0.5
    return [sentence(rng, rng.randint(0, 1), int(has_city)), "travel" if has_city else "home"]


def torchrun(*args: str, restarts: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        f"--max-restarts={restarts}",
        *args,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("distributed")
    tiny_bert = make_tiny_bert(folder / "model")
    data = make_splits(folder, city_row, ["text", "label"], sizes=(57, 31, 31))

    def command(out: str, batch: int) -> list[str]:
        return bertkit_command(
            "finetune", "classify", tiny_bert, data, folder / out, *FLAGS, "--batch-size", str(batch)
        )

    single = subprocess.run(
        [sys.executable, "-m", "bertkit", *command("one", 8)], capture_output=True, text=True, timeout=600
    )
    assert single.returncode == 0, single.stderr
    # `--nproc 2` starts torchrun itself; the killed run below goes through torchrun directly
    two = subprocess.run(
        [sys.executable, "-m", "bertkit", *command("two", 4), "--nproc", "2"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr
    killed = torchrun(str(KILLER), *command("killed", 4), restarts=1)
    assert killed.returncode == 0, killed.stderr
    return {"one": folder / "one", "two": folder / "two", "killed": folder / "killed", "log": killed.stderr}


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    for name in left:
        torch.testing.assert_close(left[name], right[name], atol=1e-5, rtol=0)


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_two_processes_take_the_steps_of_one_with_twice_the_batch(runs):
    assert_same_weights(
        runs["one"] / "checkpoint" / "model.safetensors", runs["two"] / "checkpoint" / "model.safetensors"
    )
    state = torch.load(runs["two"] / "checkpoint" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_rng"]) == 2
    assert state["loop"]["examples"] == 3 * 57  # every example once per epoch, counted over both ranks


def test_distributed_evaluation_equals_one_process(runs):
    one, two = metrics(runs["one"]), metrics(runs["two"])
    for split in ("before", "after"):
        assert one[split]["accuracy"] == two[split]["accuracy"]
        assert one[split]["confusion"] == two[split]["confusion"]
    assert one["best_dev"] == two["best_dev"]
    dev_one = [e for e in map(json.loads, (runs["one"] / "train_log.jsonl").open()) if e["event"] == "eval"]
    dev_two = [e for e in map(json.loads, (runs["two"] / "train_log.jsonl").open()) if e["event"] == "eval"]
    assert [e["accuracy"] for e in dev_one] == [e["accuracy"] for e in dev_two]
    assert sum(map(sum, one["after"]["confusion"])) == 31  # every test record scored once


def test_only_rank_zero_writes_and_the_log_is_one_run(runs):
    steps = [e for e in map(json.loads, (runs["two"] / "train_log.jsonl").open()) if e["event"] == "step"]
    assert [e["step"] for e in steps] == sorted({e["step"] for e in steps})  # no step logged twice
    one = [e for e in map(json.loads, (runs["one"] / "train_log.jsonl").open()) if e["event"] == "step"]
    # the logged loss is the global batch's, summed over the ranks' shares
    assert [e["loss"] for e in steps] == pytest.approx([e["loss"] for e in one], abs=1e-5)


def test_a_killed_worker_is_restarted_and_the_run_resumes_to_the_same_end(runs):
    assert "restarted by torchrun: resuming from" in runs["log"]
    assert_same_weights(
        runs["two"] / "checkpoint" / "model.safetensors", runs["killed"] / "checkpoint" / "model.safetensors"
    )
    assert metrics(runs["killed"])["after"] == metrics(runs["two"])["after"]


def test_nproc_is_taken_out_of_the_command_torchrun_runs():
    assert without_nproc(["finetune", "ner", "--nproc", "2", "--lr", "1"]) == ["finetune", "ner", "--lr", "1"]
    assert without_nproc(["finetune", "--nproc=4", "--out", "x"]) == ["finetune", "--out", "x"]
