"""``bertkit vocab`` (a WordPiece vocabulary from a corpus) and ``bertkit pretrain`` (MLM/NSP from
scratch or continued); every pretraining option is a config field, as for finetune."""

from __future__ import annotations

import argparse

from bertkit.cli.launch import add_nproc_argument
from bertkit.config import (
    ModelConfig,
    OutputConfig,
    RunConfig,
    TrainConfig,
    add_config_arguments,
    build_config,
    load_yaml,
    merge,
    overrides_from_args,
    resumed_run_yaml,
)
from bertkit.errors import BertkitError
from bertkit.pretrain.task import PretrainConfig

SECTIONS = {"model": ModelConfig, "train": TrainConfig, "output": OutputConfig, "pretrain": PretrainConfig}


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    vocab = verbs.add_parser(
        "vocab",
        help="train a WordPiece vocabulary on a corpus",
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    vocab.add_argument("--input", nargs="+", required=True, metavar="PATH", help="corpus files or folders")
    vocab.add_argument("--out", required=True, metavar="DIR", help="where the tokenizer is written")
    vocab.add_argument("--vocab-size", type=int, default=30522, metavar="N", help="tokens wanted")
    vocab.add_argument("--lowercase", action="store_true", help="an uncased vocabulary (default: cased)")
    vocab.add_argument(
        "--chinese-chars", action="store_true", help="every CJK character seen becomes a token"
    )
    vocab.add_argument("--min-frequency", type=int, default=2, metavar="N", help="rarest pair merged")
    add_corpus_arguments(vocab)
    vocab.set_defaults(func=run_vocab)

    pretrain = verbs.add_parser(
        "pretrain",
        help="pretrain a BERT (masked LM, next-sentence prediction) from scratch or continued",
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pretrain.add_argument("--config", metavar="YAML", help="run.yaml to start from; flags override it")
    add_config_arguments(pretrain, SECTIONS)
    add_nproc_argument(pretrain)
    pretrain.set_defaults(func=run_pretrain)


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """The corpus options of ``pretrain`` (same spellings), for ``vocab``."""
    defaults = PretrainConfig()
    parser.add_argument("--documents", choices=("blank", "file", "line"), default=defaults.documents)
    parser.add_argument("--sentences", choices=("split", "line"), default=defaults.sentences)
    for flag, help_text in (
        ("--doc-start", "regex: a line matching it starts a new document"),
        ("--keep-from", "regex: in each file, drop the lines up to and including the first match"),
        ("--keep-until", "regex: in each file, drop the first matching line and all after it"),
        ("--drop-lines", "regex: drop every matching line"),
    ):
        parser.add_argument(flag, metavar="REGEX", help=help_text)
    parser.add_argument("--on-bad-line", choices=("error", "warn"), default=defaults.on_bad_line)


def run_vocab(args: argparse.Namespace) -> int:
    from bertkit.pretrain.corpus import CorpusOptions, read_documents
    from bertkit.pretrain.vocab import VocabConfig, train_vocab

    if args.vocab_size < 10:
        raise BertkitError(f"--vocab-size must be at least 10, got {args.vocab_size}")
    options = CorpusOptions.of(args)
    texts = (sentence for doc in read_documents(args.input, options) for sentence in doc.sentences)
    cfg = VocabConfig(
        vocab_size=args.vocab_size,
        lowercase=args.lowercase,
        chinese_chars=args.chinese_chars,
        min_frequency=args.min_frequency,
    )
    report = train_vocab(texts, args.out, cfg)
    print(
        f"{args.out}: {report.vocab_size} tokens (asked {report.requested_size}), alphabet "
        f"{report.alphabet_size}, [UNK] {100 * report.unk_rate:.2f}% of the corpus sample"
    )
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from bertkit.recipes.pretrain import pretrain

    pretrain(pretrain_config(args))
    return 0


def pretrain_config(args: argparse.Namespace) -> RunConfig:
    """defaults < ``--config`` YAML (or, for ``--resume DIR`` without one, ``DIR/run.yaml``) < flags."""
    cli = overrides_from_args(args)
    config = args.config or resumed_run_yaml(cli)
    overrides = {}
    if config:
        overrides = load_yaml(config)
        if overrides.get("task", "pretrain") != "pretrain":
            raise BertkitError(f"{config} is a {overrides['task']!r} config, not a pretraining one")
    return build_config("pretrain", PretrainConfig, merge(overrides, cli))
