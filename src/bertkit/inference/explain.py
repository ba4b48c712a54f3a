"""Why a model predicted what it did: word attributions by integrated gradients, attention or occlusion.

``explain_records`` turns records and their predictions into JSON-ready rows (one per explained
target: a class, an entity, an answer's start or end), each with a score per word. What is explained
for each family is ``attribution_targets``' job; this module computes and aggregates the scores, and
checks integrated gradients' completeness (attributions sum to F(input) - F(baseline)).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from bertkit.errors import BertkitError
from bertkit.inference.attribution_targets import Subject, Target, Window, subjects

log = logging.getLogger(__name__)

METHODS = ("ig", "attention", "occlusion")
COMPLETENESS_LIMIT = 0.05  # relative completeness error above which an IG explanation is flagged
TINY = 1e-6  # |F(x) - F(baseline)| below this: the relative error is measured against TINY
NOT_FAITHFUL = "attention weights (last layer, mean over heads): cheap, but not a faithful explanation"


@dataclass(frozen=True)
class ExplainOptions:
    """How explanations are computed (the ``bertkit explain`` flags)."""

    method: str = "ig"
    n_steps: int = 50  # integrated-gradients steps (Riemann trapezoid points)
    internal_batch_size: int = 16  # interpolation steps per forward/backward pass: bounds memory
    batch_size: int = 32  # occluded copies per forward pass
    target: str | None = None  # a class / entity type / relation to explain instead of the prediction

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BertkitError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("n_steps", "internal_batch_size", "batch_size"):
            if getattr(self, name) < 1:
                raise BertkitError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class Attribution:
    """Scores per word of the input (None: not in the explained window) and, for IG, completeness."""

    scores: list[float | None]
    f_input: float | None = None
    f_baseline: float | None = None
    delta: float | None = None  # sum of attributions - (F(input) - F(baseline)), as captum reports it

    @property
    def completeness_error(self) -> float | None:
        if self.delta is None or self.f_input is None or self.f_baseline is None:
            return None
        return abs(self.delta) / max(abs(self.f_input - self.f_baseline), TINY)


def aggregate(
    token_scores: Sequence[float], word_of: Sequence[int | None], n_words: int
) -> list[float | None]:
    """Sub-word scores summed into their words; words with no sub-word in the window stay None."""
    out: list[float | None] = [None] * n_words
    for score, word in zip(token_scores, word_of):
        if word is not None:
            out[word] = (out[word] or 0.0) + float(score)
    return out


def input_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """The token embedding layer of the (first) transformers model in ``model``."""
    return encoder_of(model).get_input_embeddings()


def encoder_of(model: torch.nn.Module) -> Any:
    """The model itself when it has token embeddings, else its first part that does (the encoder of
    a relation head)."""
    for module in model.modules():  # the model itself first
        if callable(getattr(module, "get_input_embeddings", None)):
            return module
    raise BertkitError(f"{type(model).__name__} holds no transformers model to explain")


def baseline_ids(window: Window, pad_id: int) -> torch.Tensor:
    """[CLS] [PAD] ... [SEP]: every sub-word of the text replaced by [PAD], special tokens (and entity
    markers) kept, so the baseline differs from the input only in what the words contribute."""
    ids = window.batch["input_ids"].clone()
    text = torch.tensor([w is not None for w in window.word_of], device=ids.device)
    ids[0, text] = pad_id
    return ids


def scores_of(
    task: Any, model: torch.nn.Module, target: Target, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    with torch.no_grad():
        return target.score(task.forward(model, batch)).float()


def integrated_gradients(
    task: Any, model: torch.nn.Module, target: Target, n_words: int, options: ExplainOptions
) -> Attribution:
    """Layer integrated gradients over the token embeddings, summed over the hidden size, per word."""
    from captum.attr import LayerIntegratedGradients

    window = target.window
    names = [n for n in window.batch if n != "input_ids"]
    extra = tuple(window.batch[n] for n in names)

    def forward(input_ids: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return target.score(task.forward(model, {"input_ids": input_ids, **dict(zip(names, rest))})).float()

    ids = window.batch["input_ids"]
    baseline = baseline_ids(window, task.tokenizer.pad_token_id or 0)
    lig = LayerIntegratedGradients(forward, input_embeddings(model))
    attributions, delta = lig.attribute(
        ids,
        baselines=baseline,
        additional_forward_args=extra,
        n_steps=options.n_steps,
        internal_batch_size=options.internal_batch_size,
        return_convergence_delta=True,
    )
    per_token = attributions.sum(-1)[0].detach().cpu().numpy()
    with torch.no_grad():
        f_input, f_baseline = float(forward(ids, *extra)[0]), float(forward(baseline, *extra)[0])
    return Attribution(aggregate(per_token, window.word_of, n_words), f_input, f_baseline, float(delta[0]))


def transformer_of(model: torch.nn.Module) -> Any:
    """The bare transformers encoder (BertModel) inside ``model``, which returns attention weights."""
    found = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), encoder_of(model))
    return getattr(found, "base_model", found)


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Attention weights come back only from the eager implementation (sdpa does not return them)."""
    if not isinstance(model, PreTrainedModel):
        yield
        return
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def attention_attribution(task: Any, model: torch.nn.Module, target: Target, n_words: int) -> Attribution:
    """Last-layer attention, mean over heads, from the target's focus positions ([CLS], the entity's
    words, the answer's start or end, the entity markers) to every position, summed per word."""
    window = target.window
    encoder = transformer_of(model)
    inputs = {
        n: window.batch[n] for n in ("input_ids", "attention_mask", "token_type_ids") if n in window.batch
    }
    with eager_attention(encoder), torch.no_grad():
        attentions = encoder(**inputs, output_attentions=True).attentions
    last = attentions[-1][0].float().mean(0)  # [from, to]
    per_token = last[target.focus].mean(0).cpu().numpy()
    return Attribution(aggregate(per_token, window.word_of, n_words))


def repeated(batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v.repeat(n, *[1] * (v.dim() - 1)) for k, v in batch.items()}


def masked_batch(window: Window, word_sets: Sequence[set[int]], mask_id: int) -> dict[str, torch.Tensor]:
    """One copy of the window per set, the sub-words of that set's words replaced by ``mask_id``."""
    batch = repeated(window.batch, len(word_sets))
    for row, words in enumerate(word_sets):
        positions = [p for p, w in enumerate(window.word_of) if w in words]
        batch["input_ids"][row, positions] = mask_id
    return batch


def deleted_batch(window: Window, word_sets: Sequence[set[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """One copy of the window per set, that set's words deleted (later positions move up, rows padded):
    only for targets that read no position but [CLS] (classification)."""
    keep = [[p for p, w in enumerate(window.word_of) if w not in words] for words in word_sets]
    width = max(len(k) for k in keep)
    batch = {}
    for name, value in window.batch.items():
        fill = pad_id if name == "input_ids" else 0
        rows = [torch.cat([value[0, k], value.new_full((width - len(k),), fill)]) for k in keep]
        batch[name] = torch.stack(rows)
    return batch


def occlusion_attribution(
    task: Any, model: torch.nn.Module, target: Target, n_words: int, options: ExplainOptions
) -> Attribution:
    """Each word in turn replaced by [MASK] (positions stay, so every family's target still reads its
    place): its score is the drop of the target score."""
    window = target.window
    mask_id = task.tokenizer.mask_token_id
    if mask_id is None:
        mask_id = task.tokenizer.pad_token_id or 0
    full = float(scores_of(task, model, target, window.batch)[0])
    present = sorted({w for w in window.word_of if w is not None})
    scores: list[float | None] = [None] * n_words
    for begin in range(0, len(present), options.batch_size):
        chunk = present[begin : begin + options.batch_size]
        masked = scores_of(task, model, target, masked_batch(window, [{w} for w in chunk], mask_id))
        for word, value in zip(chunk, masked.cpu().tolist()):
            scores[word] = full - value
    return Attribution(scores)


def attribute(
    task: Any, model: torch.nn.Module, target: Target, n_words: int, options: ExplainOptions
) -> Attribution:
    if options.method == "ig":
        return integrated_gradients(task, model, target, n_words, options)
    if options.method == "attention":
        return attention_attribution(task, model, target, n_words)
    return occlusion_attribution(task, model, target, n_words, options)


def explanation_row(
    index: int, subject: Subject, target: Target | None, attribution: Attribution | None, method: str
) -> dict[str, Any]:
    """The JSON line of one explained target (or of an input with nothing to explain)."""
    error = attribution.completeness_error if attribution else None
    notes = [subject.note] if subject.note else []
    if method == "attention":
        notes.append(NOT_FAITHFUL)
    return {
        "input": index,
        "texts": subject.texts,
        "words": [dataclasses.asdict(w) for w in subject.words],
        "prediction": subject.prediction,
        "method": method,
        "target": target.name if target else None,
        "target_score": target.score_name if target else None,
        "window": target.window.index if target else None,
        "windows": target.window.count if target else None,
        "scores": rounded(attribution.scores) if attribution else None,
        "f_input": attribution.f_input if attribution else None,
        "f_baseline": attribution.f_baseline if attribution else None,
        "delta": attribution.delta if attribution else None,
        "completeness_error": error,
        "flagged": error is not None and error > COMPLETENESS_LIMIT,
        "note": "; ".join(notes),
    }


def rounded(scores: Sequence[float | None]) -> list[float | None]:
    return [None if s is None else float(np.round(s, 6)) for s in scores]


def explain_records(
    task: Any,
    model: torch.nn.Module,
    records: Sequence[Any],
    predictions: Sequence[Any],
    options: ExplainOptions = ExplainOptions(),
    device: torch.device | None = None,
) -> list[dict[str, Any]]:
    """One row per explained target of each record's prediction; warns about IG explanations whose
    completeness error exceeds 5% (each is flagged in its row)."""
    model.eval()
    if options.method == "ig" and any("quantized" in type(m).__module__ for m in model.modules()):
        # dynamic int8 layers take no gradient: captum would fail deep inside
        raise BertkitError(
            "integrated gradients need gradients, which an int8 model has not: explain it "
            "with method occlusion or attention, or load it in fp32 or bf16"
        )
    rows = []
    for index, subject in enumerate(subjects(task, model, records, predictions, options.target, device)):
        if not subject.targets:
            rows.append(explanation_row(index, subject, None, None, options.method))
        for target in subject.targets:
            attribution = attribute(task, model, target, len(subject.words), options)
            rows.append(explanation_row(index, subject, target, attribution, options.method))
    flagged = sum(row["flagged"] for row in rows)
    if flagged:
        log.warning(
            "%d of %d explanations have a completeness error above %.0f%% (attributions do not sum to "
            "F(input) - F(baseline)): raise --n-steps",
            flagged,
            len(rows),
            100 * COMPLETENESS_LIMIT,
        )
    return rows
