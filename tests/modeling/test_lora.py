"""LoRA: the head and added token rows train and survive save and reload, merging changes no output,
QA keeps its segment ids, and an untrained adapter changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from bertkit.config import LoraConfig
from bertkit.errors import BertkitError
from bertkit.modeling.lora import (
    adapter_targets,
    add_lora,
    head_modules,
    is_lora,
    load_adapter,
    merged,
    save_adapter,
)

ADDED = 2  # token rows added to the vocabulary, as entity markers are


def classifier(tiny_bert: Path, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    model.resize_token_embeddings(model.config.vocab_size + ADDED)
    return model


def added_ids(model: torch.nn.Module) -> list[int]:
    vocab = model.config.vocab_size
    return list(range(vocab - ADDED, vocab))


def batch(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    new = added_ids(model)[0]
    ids = torch.tensor([[2, 7, new, 9, 11, 3], [2, 12, 13, new, 3, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def train_a_little(model: torch.nn.Module, inputs: dict, steps: int = 5) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-2)
    labels = torch.tensor([1, 2])
    losses = []
    model.train()
    for _ in range(steps):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_the_head_is_found_beside_the_base_model(tiny_bert):
    assert head_modules(classifier(tiny_bert)) == ["classifier"]
    assert head_modules(AutoModelForQuestionAnswering.from_pretrained(tiny_bert)) == ["qa_outputs"]


def test_targets_are_matched_by_name_and_skip_what_is_trained_whole(tiny_bert):
    model = classifier(tiny_bert)
    names = adapter_targets(model, ["query", "value"], ["classifier"])
    assert len(names) == 4 and all(n.endswith((".query", ".value")) for n in names)
    # a target inside a module trained whole gets no adapter
    assert adapter_targets(model, ["query", "dense"], ["layer.1"]) == [
        n for n in adapter_targets(model, ["query", "dense"], []) if ".layer.1." not in n
    ]
    with pytest.raises(BertkitError, match="no such linear layer.*query"):
        adapter_targets(model, ["qkv"], [])


def test_only_adapters_head_and_added_rows_train(tiny_bert):
    model = classifier(tiny_bert)
    base_params = sum(p.numel() for p in model.parameters())
    lora = add_lora(model, LoraConfig(r=4), ["classifier"], added_ids(model))
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all(
        ("lora_" in n or "classifier" in n or "trainable_tokens" in n) for n in trainable
    )
    assert any("trainable_tokens" in n for n in trainable) and any("classifier" in n for n in trainable)
    assert sum(p.numel() for n, p in lora.named_parameters() if n in trainable) < base_params / 5


def test_an_untrained_adapter_gives_the_base_models_logits(tiny_bert):
    base = classifier(tiny_bert).eval()
    inputs = batch(base)
    expected = base(**inputs).logits
    lora = add_lora(classifier(tiny_bert), LoraConfig(), ["classifier"], added_ids(base)).eval()
    torch.testing.assert_close(lora(**inputs).logits, expected, atol=1e-6, rtol=0)


def test_loss_falls_and_merging_changes_no_output(tiny_bert):
    model = classifier(tiny_bert)
    lora = add_lora(model, LoraConfig(r=4, dropout=0.0), ["classifier"], added_ids(model))
    inputs = batch(model)
    losses = train_a_little(lora, inputs, steps=15)
    assert losses[-1] < losses[0] / 2
    lora.eval()
    flat = merged(lora).eval()
    assert is_lora(lora) and not is_lora(flat)
    torch.testing.assert_close(flat(**inputs).logits, lora(**inputs).logits, atol=1e-4, rtol=0)
    assert is_lora(lora), "merging works on a copy: training can go on"


def test_head_and_added_tokens_survive_save_and_reload(tiny_bert, tmp_path):
    model = classifier(tiny_bert)
    new = added_ids(model)
    lora = add_lora(model, LoraConfig(r=4, dropout=0.0), ["classifier"], new)
    inputs = batch(model)
    train_a_little(lora, inputs)
    lora.eval()
    expected = lora(**inputs).logits
    save_adapter(lora, tmp_path / "adapter")
    merged(lora).save_pretrained(tmp_path / "merged")

    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(plain(**inputs).logits, expected, atol=1e-5, rtol=0)
    # the adapter over a fresh base (another random head, other random rows for the added tokens)
    reloaded = load_adapter(classifier(tiny_bert, seed=1), tmp_path / "adapter").eval()
    torch.testing.assert_close(reloaded(**inputs).logits, expected, atol=1e-5, rtol=0)
    rows = reloaded.get_input_embeddings().weight[new]
    torch.testing.assert_close(rows, plain.get_input_embeddings().weight[new])


def test_qa_under_lora_sees_the_segment_ids(tiny_bert):
    """peft 0.21's PeftModelForQuestionAnswering drops token_type_ids; bertkit's wrapping must not."""
    torch.manual_seed(0)
    base = AutoModelForQuestionAnswering.from_pretrained(tiny_bert).eval()
    ids = torch.tensor([[2, 7, 8, 3, 9, 10, 11, 3]])
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    expected = base(input_ids=ids, token_type_ids=segments)
    zero_segments = base(input_ids=ids, token_type_ids=torch.zeros_like(segments))
    assert not torch.allclose(expected.start_logits, zero_segments.start_logits), "the test must tell"
    lora = add_lora(base, LoraConfig(), head_modules(base)).eval()
    got = lora(input_ids=ids, token_type_ids=segments)
    torch.testing.assert_close(got.start_logits, expected.start_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.end_logits, expected.end_logits, atol=1e-6, rtol=0)


def test_token_classification_head_is_trained_whole(tiny_bert):
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=5)
    lora = add_lora(model, LoraConfig(targets=["query", "key", "value", "dense"]), head_modules(model))
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("classifier.modules_to_save" in n for n in names)
    assert any(".key.lora_A" in n for n in names) and any("output.dense.lora_A" in n for n in names)
