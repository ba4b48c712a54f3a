"""The pretraining task: the sparse MLM head gives the dense head's loss, presets, held-out metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForPreTraining

from bertkit.config import ModelConfig
from bertkit.errors import BertkitError
from bertkit.pretrain.task import (
    MODEL_SIZES,
    PretrainConfig,
    PretrainOutput,
    PretrainTask,
    add_counts,
    bert_config,
    pretrain_metrics,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def masked_batch(tokenizer, objective: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tokenizer), (4, 12), generator=generator)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    attention = torch.ones_like(ids)
    attention[1, 8:] = 0  # a padded row
    ids[1, 8:] = tokenizer.pad_token_id
    labels = torch.full_like(ids, -100)
    chosen = (torch.rand(ids.shape, generator=generator) < 0.3) & attention.bool()
    chosen[:, 0] = chosen[:, -1] = False
    labels[chosen] = ids[chosen]
    batch = {
        "input_ids": torch.where(chosen, torch.tensor(tokenizer.mask_token_id), ids),
        "attention_mask": attention,
        "token_type_ids": torch.zeros_like(ids),
        "labels": labels,
    }
    if objective == "mlm+nsp":
        batch["next_sentence_label"] = torch.tensor([0, 1, 1, 0])
    return batch


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize(("objective", "cls"), [("mlm+nsp", BertForPreTraining), ("mlm", BertForMaskedLM)])
def test_the_sparse_head_gives_the_dense_heads_loss(tokenizer, objective, cls, sparse):
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    model = cls(config).eval()
    task = PretrainTask(PretrainConfig(objective=objective, sparse_head=sparse), ModelConfig(), tokenizer)
    batch = masked_batch(tokenizer, objective)
    ours = task.forward(model, batch)
    dense = model(**batch)  # transformers' head: logits at every position, loss over the labelled ones
    assert torch.allclose(ours.loss, dense.loss, atol=1e-5)
    assert ours.mlm_logits.shape == (int((batch["labels"] != -100).sum()), len(tokenizer))
    if objective == "mlm+nsp":
        assert torch.allclose(ours.nsp_logits, dense.seq_relationship_logits, atol=1e-5)


def test_held_out_metrics_are_token_weighted(tokenizer):
    """Two batches of 3 and 1 masked tokens: the loss is the mean over all 4 tokens, not of batch means."""
    totals = {"tokens": 0, "correct": 0, "loss": 0.0, "pairs": 0, "nsp_correct": 0}
    vocab = 5
    for logits, labels, loss in (
        (torch.eye(vocab)[[0, 1, 2]], torch.tensor([0, 1, 3]), 1.0),  # 2 of 3 right
        (torch.eye(vocab)[[4]], torch.tensor([4]), 5.0),
    ):
        loss = torch.tensor(loss)
        add_counts(totals, PretrainOutput(loss, loss, logits, labels), {})
    metrics = pretrain_metrics(totals)
    assert metrics["mlm_accuracy"] == pytest.approx(3 / 4)
    assert metrics["mlm_loss"] == pytest.approx((3 * 1.0 + 5.0) / 4)
    assert metrics["perplexity"] == pytest.approx(math.exp(2.0))
    assert "nsp_accuracy" not in metrics and "rtd_accuracy" not in metrics


def test_replaced_token_metrics_are_token_weighted():
    """ELECTRA's: 4 real tokens (3 right, 1 replaced), then 2 (1 right, 1 replaced)."""
    totals = {"tokens": 0, "correct": 0, "loss": 0.0, "pairs": 0, "nsp_correct": 0}
    totals |= {"rtd_tokens": 0, "rtd_correct": 0, "rtd_loss": 0.0, "replaced": 0}
    for rtd_logits, rtd_labels, rtd_loss in (
        (torch.tensor([2.0, -1.0, -3.0, 0.5]), torch.tensor([1.0, 0.0, 0.0, 0.0]), 0.2),
        (torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 0.0]), 0.8),
    ):
        mlm = torch.tensor(1.0)
        out = PretrainOutput(mlm, mlm, torch.eye(3)[[0]], torch.tensor([0]))
        out.rtd_logits, out.rtd_labels, out.rtd_loss = rtd_logits, rtd_labels, torch.tensor(rtd_loss)
        add_counts(totals, out, {})
    metrics = pretrain_metrics(totals)
    assert metrics["rtd_accuracy"] == pytest.approx(4 / 6)
    assert metrics["rtd_loss"] == pytest.approx((4 * 0.2 + 2 * 0.8) / 6)
    assert metrics["replaced_share"] == pytest.approx(2 / 6)


def test_no_masked_token_is_an_error():
    with pytest.raises(BertkitError, match="no masked token"):
        pretrain_metrics({"tokens": 0, "correct": 0, "loss": 0.0, "pairs": 0, "nsp_correct": 0})


@pytest.mark.parametrize("size", sorted(MODEL_SIZES))
def test_size_presets_follow_bert_miniatures(tokenizer, size):
    layers, hidden, heads = MODEL_SIZES[size]
    config = bert_config(size, tokenizer, max_length=128)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (
        layers,
        hidden,
        heads,
    )
    assert config.intermediate_size == 4 * hidden and config.vocab_size == len(tokenizer)
    assert config.max_position_embeddings >= 512 and config.pad_token_id == tokenizer.pad_token_id


def test_model_dropout_applies_to_the_run_but_the_saved_config_keeps_berts(tokenizer, tmp_path):
    task = PretrainTask(PretrainConfig(objective="mlm"), ModelConfig(dropout=0.0), tokenizer)
    model = task.build_model(bert_config("tiny", tokenizer, 128))
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.0}
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == saved["attention_probs_dropout_prob"] == 0.1  # BERT's default
    again = PretrainTask(
        PretrainConfig(objective="mlm", init=str(tmp_path)), ModelConfig(dropout=0.0), tokenizer
    )
    assert {m.p for m in again.build_model().modules() if isinstance(m, torch.nn.Dropout)} == {0.0}


def test_electra_replaces_the_masked_tokens_by_the_generators_samples(tokenizer):
    task = PretrainTask(PretrainConfig(objective="electra", generator_layers=1), ModelConfig(), tokenizer)
    model = task.build_model(bert_config("tiny", tokenizer, 32))
    shared = model.bert.embeddings.word_embeddings.weight
    assert model.generator.bert.embeddings is model.bert.embeddings
    assert model.generator.cls.predictions.decoder.weight is shared
    assert len(model.generator.bert.encoder.layer) == 1 and len(model.bert.encoder.layer) == 2
    batch = masked_batch(tokenizer, "electra")
    chosen = batch["labels"] != -100
    original = torch.where(chosen, batch["labels"], batch["input_ids"])
    forced = int(original[chosen][0])  # the generator always proposes this token
    with torch.no_grad():
        model.generator.cls.predictions.bias[forced] = 1e4
    seen = {}
    model.bert.embeddings.word_embeddings.register_forward_hook(
        lambda module, args, result: seen.setdefault("ids", []).append(args[0])
    )
    out = task.forward(model, batch)
    corrupted = seen["ids"][1]  # the generator embeds first, then the discriminator
    assert torch.equal(corrupted[chosen], torch.full_like(original[chosen], forced))
    assert torch.equal(corrupted[~chosen], original[~chosen])
    real = batch["attention_mask"].bool()
    expected = (chosen & (original != forced))[real].float()  # a sample equal to the original is not replaced
    assert torch.equal(out.rtd_labels, expected) and 0 < expected.sum() < chosen.sum()
    assert out.loss.item() == pytest.approx((out.mlm_loss + 50.0 * out.rtd_loss).item())
    out.loss.backward()  # both losses train the shared embeddings; the generator learns by MLM alone
    assert shared.grad is not None and shared.grad.abs().sum() > 0
    assert model.generator.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert int(model.batches_trained) == 1
