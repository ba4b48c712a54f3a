"""The pretraining recipe: corpus -> tokenised store (cached) -> MLM/NSP instances -> fit -> a model.

Writes to the output directory: the model with the lowest held-out perplexity in the Hugging Face layout
(``AutoModelForMaskedLM`` and ``bertkit finetune --model DIR`` open it), ``run.yaml``, ``metrics.json``
(held-out MLM accuracy, loss, perplexity and NSP accuracy, before and after), ``train_log.jsonl``,
``curves.png`` and ``checkpoint/`` for ``--resume``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit.atomic import write_json, write_text
from bertkit.config import ModelConfig, RunConfig
from bertkit.data.batching import inference_batches
from bertkit.errors import BertkitError
from bertkit.modeling.load import check_model, load_tokenizer
from bertkit.pretrain.corpus import (
    CorpusOptions,
    CorpusStats,
    corpus_fingerprint,
    one_sentence_warning,
    read_documents,
)
from bertkit.pretrain.instances import Instances, SpecialIds, build_instances, split_documents
from bertkit.pretrain.store import TokenStore, open_or_build_store
from bertkit.pretrain.task import PretrainTask, add_counts, bert_config, pretrain_metrics
from bertkit.pretrain.words import encode_sentences
from bertkit.recipes.run_dir import (
    CHECKPOINT,
    ScoresByStep,
    checkpoint_to_resume,
    elastic_restart,
    prepare_out_dir,
    previous_metrics,
)
from bertkit.reporting.plots import plot_curves
from bertkit.reporting.tables import format_table
from bertkit.training import distributed
from bertkit.training.checkpoint import load_weights, save_model
from bertkit.training.loop import TrainLog, fit
from bertkit.training.runtime import Runtime, eval_mode, make_runtime, seed_everything, to_device
from bertkit.training.state import run_fingerprint

log = logging.getLogger(__name__)

# evaluations of a step-based run when --train.eval_every is left at 0 ("each epoch" would be never)
EVALS_PER_RUN = 10
# sentences per tokenizer call while building the store
ENCODE_SENTENCES = 2000


def pretrain(cfg: RunConfig) -> dict[str, Any]:
    """Run the whole recipe for ``cfg`` (task section: ``PretrainConfig``); return ``metrics.json``."""
    started = time.perf_counter()
    cfg = check_pretrain_config(cfg)
    p = cfg.task
    tokenizer = load_tokenizer(ModelConfig(name_or_path=p.tokenizer or p.init, revision=cfg.model.revision))
    # joins the process group under torchrun; starts the thread governor (bertkit.training.threads)
    runtime = make_runtime(cfg.train.precision, cfg.train.threads, cfg.train.adapt_threads)
    main = runtime.is_main  # only rank 0 writes; it also builds the caches the other ranks then open
    cfg = distributed.on_main(lambda: elastic_restart(cfg))
    out = distributed.on_main(lambda: prepare_out_dir(cfg))  # a used --out is refused before tokenising
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=str(out)))
    store = distributed.main_first(lambda: tokenised_corpus(cfg, tokenizer))
    fingerprint = {**run_fingerprint(cfg, {}), "corpus": store.fingerprint}
    resume_from = checkpoint_to_resume(cfg, out, fingerprint)
    train, heldout = distributed.main_first(lambda: make_instances(cfg, store, tokenizer))
    if main:
        write_text(out / "run.yaml", repeatable(cfg).to_yaml())

    task = PretrainTask(p, cfg.model, tokenizer, seed=cfg.train.seed)
    seed_everything(cfg.train.seed)
    model = task.build_model(
        bert_config(p.model_size, tokenizer, cfg.model.max_length) if p.model_size else None
    )
    eval_batch = cfg.train.batch_size * 2
    heldout_features = task.heldout_features(heldout)
    evaluate = lambda m: evaluate_heldout(m, task, heldout_features, runtime, eval_batch)  # noqa: E731
    metrics = (previous_metrics(out) if resume_from else {}) or {"split": "held-out"}
    if cfg.output.before and "before" not in metrics:
        metrics = {"split": "held-out", "before": evaluate(model)}
        if main:
            write_json(out / "metrics.json", metrics)
    train_cfg = dataclasses.replace(cfg.train, resume=resume_from, eval_every=eval_interval(cfg, len(train)))
    train_log = TrainLog(out / "train_log.jsonl" if main else None)
    heldout_scores = ScoresByStep(evaluate, None)
    try:
        state = fit(
            model,
            task,
            train,
            train_cfg,
            runtime,
            evaluate=heldout_scores,
            on_best=lambda m: save_model(task.saved_model(m), tokenizer, out),
            checkpoint_dir=out / CHECKPOINT if cfg.output.checkpoint else None,
            train_log=train_log,
            on_eval=heldout_scores.noted,
            fingerprint=fingerprint,
        )
    except BaseException:
        train_log.close()
        raise
    load_weights(task.saved_model(model), out / "model.safetensors")
    # the held-out masks are fixed, so the best step's own evaluation is what scoring its reloaded
    # weights again would give (a resumed run may not have it: then it is scored again)
    best_eval = heldout_scores.by_step.get(state.best_step)
    if best_eval is not None:
        log.info("after: the best step's (%d) own held-out evaluation, not repeated", state.best_step)
    metrics["after"] = best_eval or evaluate(model)
    metrics["best"] = {"step": state.best_step, task.main_metric: state.best_metric}
    tokens = state.examples * float(np.mean(train.lengths))
    metrics["train"] = {
        "steps": state.step,
        "instances": len(train),
        "heldout_instances": len(heldout_features),
        "train_seconds": state.train_seconds,
        "train_tokens_per_s": tokens / max(state.train_seconds, 1e-9),
    }
    train_log.write(
        "train_end",
        **state.throughput(),
        train_tokens_per_s=metrics["train"]["train_tokens_per_s"],
        truncated_tokens=train.stats.truncated_tokens,
        wall_seconds=time.perf_counter() - started,
    )
    train_log.close()
    if not main:
        return metrics
    write_json(out / "metrics.json", metrics)
    if cfg.output.plot:
        plot_curves(out / "train_log.jsonl", out / "curves.png", task.plot_metric, task.electra)
    columns = {k: metrics[k] for k in ("before", "after") if k in metrics}
    print(format_table(columns, f"held-out documents ({out})"))
    return metrics


def check_pretrain_config(cfg: RunConfig) -> RunConfig:
    """Refuse contradictory or missing choices before any work; ``--from`` also names the model."""
    cfg.validate()
    p = cfg.task
    if cfg.model.name_or_path and not p.init:  # `--model M` reads as `--from M`, as in finetune
        p = dataclasses.replace(p, init=cfg.model.name_or_path)
        cfg = dataclasses.replace(cfg, task=p)
    if not p.input:
        raise BertkitError("no corpus: pass --input FILE_OR_DIR ...")
    if p.init and (p.model_size or p.tokenizer):
        raise BertkitError(
            "--from continues a model with its own vocabulary and size: drop --tokenizer/--model-size"
        )
    if not p.init and not (p.model_size and p.tokenizer):
        raise BertkitError(
            "a new model needs --tokenizer DIR and --model-size SIZE (or continue one with --from MODEL)"
        )
    if p.init:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name_or_path=p.init))
        check_model(cfg.model)  # a missing model or a --max-length beyond its positions: one line
    return cfg


def tokenised_corpus(cfg: RunConfig, tokenizer: Any) -> TokenStore:
    """The corpus as token ids in a store under the cache, reused while corpus, options and tokenizer
    stay the same."""
    p = cfg.task
    # pretokenized: the spaces are word boundaries, a line break too
    options = dataclasses.replace(
        CorpusOptions.of(p), space_between_lines=p.word_boundaries == "pretokenized"
    )
    identity = "\n".join(
        [corpus_fingerprint(p.input, options), tokenizer_identity(tokenizer), f"words={p.word_boundaries}"]
    )
    fingerprint = hashlib.sha256(identity.encode()).hexdigest()
    folder = cache_root(p.cache_dir) / "corpus" / fingerprint[:20]
    stats = CorpusStats()

    def documents() -> Iterator[list[tuple[list[int], list[bool]]]]:
        for group in document_groups(read_documents(p.input, options, stats=stats)):
            # one tokenizer call for many short documents: the fast tokenizer batches in Rust
            encoded = encode_sentences(
                [s for doc in group for s in doc.sentences], tokenizer, p.word_boundaries
            )
            begin = 0
            for doc in group:
                yield encoded[begin : begin + len(doc.sentences)]
                begin += len(doc.sentences)
        log.info("corpus: %s", stats.summary())
        if p.objective == "mlm+nsp" and (warning := one_sentence_warning(stats, options)):
            log.warning("%s", warning)

    with quiet_length_warnings():
        return open_or_build_store(folder, fingerprint, documents)


def document_groups(documents: Iterator[Any], sentences: int = ENCODE_SENTENCES) -> Iterator[list[Any]]:
    """Consecutive documents, about ``sentences`` sentences a group."""
    group, size = [], 0
    for doc in documents:
        group.append(doc)
        size += len(doc.sentences)
        if size >= sentences:
            yield group
            group, size = [], 0
    if group:
        yield group


@contextlib.contextmanager
def quiet_length_warnings() -> Iterator[None]:
    """The store keeps whole sentences, cut into instances later: transformers' "longer than the
    maximum sequence length" warning would be wrong."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def tokenizer_identity(tokenizer: Any) -> str:
    return "tokenizer=" + hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("BERTKIT_CACHE", "~/.cache/bertkit")).expanduser()


def make_instances(cfg: RunConfig, store: TokenStore, tokenizer: Any) -> tuple[Instances, Instances]:
    """Training instances from most documents, held-out ones from the rest (never trained on)."""
    p = cfg.task
    # random B segments of held-out pairs come from held-out documents: NSP needs two of them at least
    least = 2 if p.objective == "mlm+nsp" else 1
    heldout_count = max(least, round(store.n_documents * p.heldout))
    if heldout_count >= store.n_documents:
        raise BertkitError(
            f"the corpus has {store.n_documents} documents: too few to hold {heldout_count} out for "
            "evaluation and train on the rest (see --documents and --doc-start)"
        )
    train_docs, heldout_docs = split_documents(store.n_documents, heldout_count, cfg.train.seed)
    special = SpecialIds(cls=tokenizer.cls_token_id, sep=tokenizer.sep_token_id)
    common = dict(objective=instance_objective(p.objective), max_length=cfg.model.max_length, special=special)
    train = build_instances(
        store,
        train_docs,
        **common,
        short_seq_prob=p.short_seq_prob,
        duplicates=p.duplicates,
        seed=cfg.train.seed,
        folder=store.folder / f"instances-train-{instance_key(cfg)}",
    )
    heldout = build_instances(
        store,
        heldout_docs,
        **common,
        short_seq_prob=0.0,
        duplicates=1,
        seed=cfg.train.seed,
        folder=store.folder / f"instances-heldout-{instance_key(cfg)}",
    )
    log.info(
        "%d training instances from %d documents, %d held-out from %d",
        len(train),
        len(train_docs),
        len(heldout),
        len(heldout_docs),
    )
    return train, heldout


def instance_objective(objective: str) -> str:
    """How instances are cut for an objective: ELECTRA's are RoBERTa's packed sentences, no NSP."""
    return "mlm" if objective == "electra" else objective


def instance_key(cfg: RunConfig) -> str:
    p = cfg.task
    parts = (instance_objective(p.objective), cfg.model.max_length, p.short_seq_prob, p.duplicates, p.heldout)
    key = "|".join(map(str, (*parts, cfg.train.seed)))
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def eval_interval(cfg: RunConfig, n_instances: int) -> int:
    """``--train.eval_every``, or for a run by steps a tenth of them (an epoch may never end)."""
    if cfg.train.eval_every or not cfg.train.max_steps:
        return cfg.train.eval_every
    return max(1, cfg.train.max_steps // EVALS_PER_RUN)


def evaluate_heldout(
    model: torch.nn.Module, task: PretrainTask, features: list[Any], runtime: Runtime, batch_size: int
) -> dict:
    """MLM accuracy, loss and perplexity (and NSP accuracy) on the held-out sample, fixed masks; under
    torchrun each rank counts every world-size-th batch and the counts are summed."""
    totals = {"tokens": 0, "correct": 0, "loss": 0.0, "pairs": 0, "nsp_correct": 0}
    totals |= {"rtd_tokens": 0, "rtd_correct": 0, "rtd_loss": 0.0, "replaced": 0}
    batches = list(enumerate(inference_batches(features, batch_size)))[runtime.rank :: runtime.world_size]
    with task.fixed_masks() as reseed, torch.no_grad(), eval_mode(model), runtime.autocast():
        for k, idx in tqdm(batches, desc="held-out", unit="batch", leave=False, disable=not runtime.is_main):
            reseed(k)
            batch = to_device(task.collate([features[i] for i in idx]), runtime.device)
            add_counts(totals, task.forward(model, batch), batch)
    summed = distributed.sum_across([float(v) for v in totals.values()])
    metrics = pretrain_metrics({k: type(totals[k])(v) for k, v in zip(totals, summed)})
    if task.electra:
        metrics["batches_trained"] = int(model.batches_trained)
    return metrics


def repeatable(cfg: RunConfig) -> RunConfig:
    """The config as run.yaml keeps it: absolute local paths, and no one-off --resume."""

    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    task = dataclasses.replace(
        cfg.task,
        input=[absolute(path) for path in cfg.task.input],
        tokenizer=absolute(cfg.task.tokenizer),
        init=absolute(cfg.task.init),
    )
    output = dataclasses.replace(cfg.output, dir=absolute(cfg.output.dir))
    model = dataclasses.replace(cfg.model, name_or_path=absolute(cfg.model.name_or_path))
    return dataclasses.replace(
        cfg, task=task, model=model, output=output, train=dataclasses.replace(cfg.train, resume=None)
    )
