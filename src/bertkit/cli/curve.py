"""``bertkit curve TASK`` (how a model's score grows with the labels it trains on) and ``bertkit select``
(which unlabelled records to label next). ``curve`` takes every flag of ``bertkit finetune TASK``."""

from __future__ import annotations

import argparse
import logging

from bertkit.cli.finetune import add_task_parsers, config_from_args
from bertkit.cli.inference import add_adapt_threads_flag, check_args, load_predictor
from bertkit.errors import BertkitError

log = logging.getLogger("bertkit")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    curve = verbs.add_parser(
        "curve",
        help="learning curve: fine-tune on nested subsets of train, several seeds each",
        allow_abbrev=False,
    )
    for sub in add_task_parsers(curve, run_curve):
        group = sub.add_argument_group("learning curve")
        group.add_argument(
            "--sizes",
            default="100,300,1000,all",
            help="training records per point, comma-separated; all: the whole set",
        )
        group.add_argument(
            "--seeds", type=int, default=3, metavar="N", help="runs per size (seeds --seed, +1, ...)"
        )
        group.add_argument(
            "--keep-models",
            action="store_true",
            help="keep every run's weights (default: metrics and logs only)",
        )

    select = verbs.add_parser(
        "select", help="choose the unlabelled records to label next (active learning)", allow_abbrev=False
    )
    select.add_argument("--model", required=True, metavar="DIR", help="fine-tuned classify or ner model")
    select.add_argument(
        "--input", required=True, metavar="FILE", help="unlabelled records, as predict takes them"
    )
    select.add_argument(
        "--out", required=True, metavar="FILE", help="the chosen records, in the input's format"
    )
    select.add_argument("--budget", required=True, type=int, metavar="N", help="records to choose")
    select.add_argument(
        "--strategy",
        default="entropy",
        choices=("entropy", "margin", "random"),
        help="entropy of the predicted distribution, margin 1 - (p1 - p2), or a seeded random sample",
    )
    select.add_argument(
        "--aggregate",
        default="max",
        choices=("max", "mean"),
        help="ner: a sentence's score from its words' (max: its least certain word)",
    )
    select.add_argument(
        "--no-diversity",
        dest="diverse",
        action="store_false",
        help="take the top N scores as they are (default: drop duplicates, k-center among the top 3N)",
    )
    select.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    select.add_argument("--batch-size", type=int, default=64, help="windows per batch, >= 1 (default 64)")
    select.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads (default 0: all)")
    select.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "bf16"), help="model precision"
    )
    select.add_argument("--format", default=None, choices=("auto", "conll", "jsonl", "spans", "text"))
    select.add_argument("--on-bad-line", default=None, choices=("error", "warn"))
    add_adapt_threads_flag(select)
    select.set_defaults(func=run_select, engine="torch")


def run_curve(args: argparse.Namespace) -> int:
    from bertkit.recipes.curve import curve, parse_sizes

    curve(config_from_args(args), parse_sizes(args.sizes), args.seeds, args.keep_models)
    return 0


def run_select(args: argparse.Namespace) -> int:
    from bertkit.inference.predictor import saved_run_config
    from bertkit.inference.selection import require_family, select_records, write_selection

    check_args(args, "--input", args.input)
    if args.budget < 1:
        raise BertkitError(f"--budget must be at least 1, got {args.budget}")
    require_family(saved_run_config(args.model).task_name)  # before the model is loaded
    predictor = load_predictor(args)
    task = predictor.task
    records = task.read(args.input, labelled=False)
    if not records:
        raise BertkitError(f"{args.input}: no records to choose from")
    chosen = select_records(
        predictor.model,
        task,
        records,
        predictor.runtime,
        args.budget,
        args.strategy,
        seed=args.seed,
        diverse=args.diverse,
        aggregate=args.aggregate,
        batch_size=args.batch_size,
    )
    sidecar = write_selection(task, records, chosen, args.input, args.out)
    log.info(
        "wrote %d of %d records to %s (scores: %s)", len(chosen.indices), len(records), args.out, sidecar
    )
    return 0
