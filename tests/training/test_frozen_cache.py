"""Frozen-layer caching: a run that replays the cached output of its frozen embeddings and bottom
layers trains to the weights of an uncached run without dropout there, and never runs the frozen part
in a training step."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import bertkit_command, make_splits, ner_command, sentence
from safetensors.torch import load_file
from transformers.models.bert import modeling_bert

from bertkit.cli.app import main
from bertkit.training import frozen_cache

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# dropout stays on (0.1) above the frozen part: the cached and the uncached run must draw alike
FROZEN = ["--model.freeze_embeddings", "true", "--model.freeze_layers", "1", "--precision", "fp32"]
TRAIN = ["--epochs", "3", "--batch-size", "8", "--lr", "5e-3", "--max-length", "32", "--seed", "3"]


def city_row(rng: random.Random) -> list[str]:
    has_city = rng.random() < 0.5
    return [sentence(rng, rng.randint(0, 1), int(has_city)), "travel" if has_city else "home"]


def counting_embeddings(monkeypatch) -> list[int]:
    """Count the embedding layer's forward passes made with gradients on (training steps)."""
    calls = [0]
    real = modeling_bert.BertEmbeddings.forward

    def forward(self, *args, **kwargs):
        calls[0] += torch.is_grad_enabled()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(modeling_bert.BertEmbeddings, "forward", forward)
    return calls


@pytest.mark.parametrize("family", ["ner", "classify"])
def test_the_cached_run_equals_an_uncached_one_without_frozen_dropout(
    family, tiny_bert, synthetic_ner, tmp_path, monkeypatch
):
    data = (
        synthetic_ner if family == "ner" else make_splits(tmp_path, city_row, ["text", "label"], (80, 30, 30))
    )

    def command(out):
        if family == "ner":
            return ner_command(tiny_bert, data, out, *FROZEN, *TRAIN)
        return bertkit_command("finetune", "classify", tiny_bert, data, out, *FROZEN, *TRAIN)

    calls = counting_embeddings(monkeypatch)
    monkeypatch.setattr(frozen_cache, "IN_MEMORY_BYTES", 0)  # the memory-mapped table, as for a big corpus
    assert main(command(tmp_path / "cached")) == 0
    cached_calls, calls[0] = calls[0], 0
    uncached = [
        *command(tmp_path / "uncached"),
        "--model.cache_frozen",
        "false",
        "--model.frozen_dropout",
        "false",
    ]
    assert main(uncached) == 0
    assert cached_calls == 0 and calls[0] > 20  # the cached run never ran the frozen part to train

    left = load_file(str(tmp_path / "cached" / "checkpoint" / "model.safetensors"))
    right = load_file(str(tmp_path / "uncached" / "checkpoint" / "model.safetensors"))
    start = load_file(str(tiny_bert / "model.safetensors"))
    # fp32 GEMMs over differently shaped batches (the cache's inference batches, the uncached run's
    # training batches) round differently, and Adam's normalised step turns such a difference on a
    # near-zero gradient into a sizeable share of lr (5e-3): the largest difference was 5e-5 on an AVX2
    # CPU, 1.1e-4 on an AVX-512 one, so the bound is lr / 20 for single elements, while nearly all
    # elements must agree to 1e-5 (a wrong cache moves every trained weight by ~lr per step)
    close = 0
    for name in left:
        torch.testing.assert_close(left[name], right[name], atol=2.5e-4, rtol=0)
        close += int(((left[name] - right[name]).abs() <= 1e-5).sum())
    assert close >= 0.99 * sum(t.numel() for t in left.values())
    top = "bert.encoder.layer.1.output.dense.weight"
    assert not torch.equal(left[top], start[top.removeprefix("bert.")])  # the top trained
    frozen = "bert.encoder.layer.0.output.dense.weight"
    assert torch.equal(left[frozen], start[frozen.removeprefix("bert.")])
    dev = [
        [e for e in map(json.loads, (tmp_path / run / "train_log.jsonl").open()) if e["event"] == "eval"]
        for run in ("cached", "uncached")
    ]
    metric = "f1" if family == "ner" else "accuracy"
    assert [e[metric] for e in dev[0]] == pytest.approx([e[metric] for e in dev[1]], abs=1e-6)


def test_frozen_dropout_is_what_the_cache_changes(tiny_bert, synthetic_ner, tmp_path):
    # the uncached run with the frozen part's dropout on draws other masks: other weights
    assert main(ner_command(tiny_bert, synthetic_ner, tmp_path / "a", *FROZEN, *TRAIN)) == 0
    assert (
        main(
            ner_command(
                tiny_bert, synthetic_ner, tmp_path / "b", *FROZEN, *TRAIN, "--model.cache_frozen", "false"
            )
        )
        == 0
    )
    left = load_file(str(tmp_path / "a" / "checkpoint" / "model.safetensors"))
    right = load_file(str(tmp_path / "b" / "checkpoint" / "model.safetensors"))
    top = "bert.encoder.layer.1.output.dense.weight"
    assert (left[top] - right[top]).abs().max() > 1e-4


def test_rows_are_right_padded_and_found_by_window(tmp_path):
    class Window:
        def __init__(self, n):
            self.input_ids = list(range(n))

    windows = [Window(2), Window(3)]
    states = frozen_cache.FrozenStates(windows, 4, tmp_path)
    states.store(0, torch.ones(2, 4))
    states.store(1, torch.full((3, 4), 2.0))
    batch = states.batch([windows[1], windows[0]], 5)
    assert batch.shape == (2, 5, 4)
    assert batch[0, :3].eq(2).all() and batch[0, 3:].eq(0).all()
    assert batch[1, :2].eq(1).all() and batch[1, 2:].eq(0).all()
    assert states.batch([Window(2)], 5) is None  # an equal window that is not one of these: not cached
