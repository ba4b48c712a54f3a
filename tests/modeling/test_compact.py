"""Compact word embeddings: training only the rows the training data uses gives the weights of
training the whole matrix, unused rows included (weight decay), and saves as a plain ``nn.Embedding``."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import CITIES, FILLER, NAMES, bertkit_command, write_rows
from safetensors.torch import load_file
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from bertkit.cli.app import main
from bertkit.data.features import InMemoryFeatures, write_sharded
from bertkit.errors import BertkitError
from bertkit.modeling import compact
from bertkit.modeling.compact import CompactEmbedding, compact_embeddings, compactable, used_token_ids
from bertkit.tasks.classify.task import TextFeature

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "e", "f", "g", "h"]
EMBEDDING = "bert.embeddings.word_embeddings.weight"


def embedding(rows: int = 12, dim: int = 4) -> nn.Embedding:
    torch.manual_seed(0)
    return nn.Embedding(rows, dim, padding_idx=0)


def test_forward_equals_the_whole_matrix_and_unseen_ids_only_pass_in_evaluation():
    whole = embedding()
    module = CompactEmbedding(whole, torch.tensor([0, 2, 3, 5]))
    seen = torch.tensor([[2, 5, 0], [3, 3, 0]])
    torch.testing.assert_close(module(seen), whole(seen), rtol=0, atol=0)
    unseen = torch.tensor([[2, 7, 11]])
    with pytest.raises(BertkitError, match="token id 7 reached training"):
        module(unseen)
    module.eval()
    torch.testing.assert_close(module(unseen), whole(unseen), rtol=0, atol=0)


def test_decay_reaches_the_frozen_rows_and_the_saved_matrix():
    whole = embedding()
    start = whole.weight.detach().clone()
    module = CompactEmbedding(whole, torch.tensor([0, 2]))
    with torch.no_grad():
        module.rows += 1.0
    module.step_taken(lr=0.1, weight_decay=0.5)
    module.step_taken(lr=0.2, weight_decay=0.5)
    saved = module.state_dict()
    assert list(saved) == ["weight"] and saved["weight"].shape == (12, 4)
    expected = start * (0.95 * 0.9)
    expected[[0, 2]] = start[[0, 2]] + 1.0
    torch.testing.assert_close(saved["weight"], expected)
    module.eval()
    torch.testing.assert_close(module(torch.tensor([7, 2])), expected[[7, 2]])
    restored = module.restore()
    assert type(restored) is nn.Embedding
    torch.testing.assert_close(restored.weight.detach(), expected)


def test_loading_a_state_dict_fills_both_parts():
    module = CompactEmbedding(embedding(), torch.tensor([1, 4]))
    module.step_taken(lr=0.1, weight_decay=0.5)
    weight = torch.arange(48, dtype=torch.float32).view(12, 4)
    module.load_state_dict({"weight": weight})
    torch.testing.assert_close(module.full_weight(), weight)
    torch.testing.assert_close(module.rows.detach(), weight[[1, 4]])
    with pytest.raises(RuntimeError, match="shape"):
        module.load_state_dict({"weight": torch.zeros(3, 4)})


def tiny_config(**extra) -> BertConfig:
    return BertConfig(
        vocab_size=len(WORDS),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        **extra,
    )


def test_only_a_trained_embedding_of_its_own_is_compacted():
    assert compactable(BertForSequenceClassification(tiny_config())) is not None
    assert compactable(BertForMaskedLM(tiny_config())) is None  # the MLM decoder shares the matrix
    frozen = BertForSequenceClassification(tiny_config())
    frozen.get_input_embeddings().weight.requires_grad_(False)
    assert compactable(frozen) is None


def feature(ids: list[int]) -> TextFeature:
    return TextFeature(input_ids=ids, token_type_ids=[0] * len(ids), target=0, record=0)


def test_used_ids_are_the_same_from_sharded_and_in_memory_features(tmp_path):
    features = [feature([2, 5, 3]), feature([2, 9, 9, 3]), feature([2, 3])]
    sharded = write_sharded(iter(features), tmp_path / "shards", "fp", shard_features=2)
    assert used_token_ids(InMemoryFeatures(features), [0, 3]).tolist() == [0, 2, 3, 5, 9]
    assert used_token_ids(sharded, [0, 1]).tolist() == [0, 1, 2, 3, 5, 9]


def test_the_model_gets_its_embedding_back_after_an_error():
    model = BertForSequenceClassification(tiny_config())
    original = model.get_input_embeddings()
    with pytest.raises(ValueError), compact_embeddings(model, InMemoryFeatures([feature([2, 4, 3])])) as part:
        assert isinstance(model.get_input_embeddings(), CompactEmbedding) and part is not None
        raise ValueError("a crash inside training")
    assert model.get_input_embeddings() is original


def city_row(rng: random.Random, fillers: list[str]) -> list[str]:
    words = [rng.choice(fillers) for _ in range(5)]
    has_city = rng.random() < 0.5
    words.insert(rng.randrange(6), rng.choice(CITIES if has_city else NAMES))
    return [" ".join(words), "travel" if has_city else "home"]


def test_training_the_used_rows_gives_the_weights_of_training_all(tiny_bert, tmp_path, monkeypatch):
    rng = random.Random(5)
    # training uses half of the filler words; dev and test also hold words training never saw,
    # and spelled-out ones ("zebra": z ##e ##b ...), which only the evaluation path meets
    train = [city_row(rng, FILLER[:7]) for _ in range(80)]
    held_out = [city_row(rng, FILLER + ["zebra", "quokka"]) for _ in range(30)]
    data = {
        "train": write_rows(tmp_path / "train.tsv", ["text", "label"], train),
        "dev": write_rows(tmp_path / "dev.tsv", ["text", "label"], held_out),
    }
    train_flags = ["--epochs", "3", "--batch-size", "8", "--lr", "5e-3", "--seed", "3", "--precision", "fp32"]
    flags = [*train_flags, "--train.weight_decay", "0.5"]  # large, so that the untrained rows move
    calls = [0]
    real = CompactEmbedding.forward

    def forward(self, input_ids):
        calls[0] += 1
        return real(self, input_ids)

    monkeypatch.setattr(compact.CompactEmbedding, "forward", forward)
    assert main(bertkit_command("finetune", "classify", tiny_bert, data, tmp_path / "rows", *flags)) == 0
    compact_calls, calls[0] = calls[0], 0
    whole = [*bertkit_command("finetune", "classify", tiny_bert, data, tmp_path / "all", *flags)]
    assert main([*whole, "--train.compact_embeddings", "false"]) == 0
    assert compact_calls > 30 and calls[0] == 0

    left = load_file(str(tmp_path / "rows" / "checkpoint" / "model.safetensors"))
    right = load_file(str(tmp_path / "all" / "checkpoint" / "model.safetensors"))
    start = load_file(str(tiny_bert / "model.safetensors"))
    assert left.keys() == right.keys()
    # the same gradients, but the clipping norm sums them in another order (a smaller tensor): a few
    # float32 ulps of its factor, scaled away by Adam's normalised step
    for name in left:
        torch.testing.assert_close(left[name], right[name], atol=1e-6, rtol=1e-5)
    # the best model, saved mid-run by save_pretrained, holds the whole matrix too
    best = [load_file(str(tmp_path / run / "model.safetensors"))[EMBEDDING] for run in ("rows", "all")]
    torch.testing.assert_close(best[0], best[1], atol=1e-6, rtol=1e-5)
    unused = start[EMBEDDING.removeprefix("bert.")][-26:]  # the ##letters: in no training text
    assert (left[EMBEDDING][-26:].abs() < 0.99 * unused.abs()).all()  # decayed, not left as they were
    dev = [
        [
            e["accuracy"]
            for e in map(json.loads, (tmp_path / run / "train_log.jsonl").open())
            if e["event"] == "eval"
        ]
        for run in ("rows", "all")
    ]
    assert dev[0] == pytest.approx(dev[1], abs=1e-6) and len(dev[0]) == 3
