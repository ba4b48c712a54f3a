"""``bertkit evaluate`` and ``bertkit predict``: a saved model on a labelled file, or on new input."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from bertkit.atomic import write_json

log = logging.getLogger("bertkit")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    evaluate = verbs.add_parser(
        "evaluate", help="score a fine-tuned model on a labelled file", allow_abbrev=False
    )
    evaluate.add_argument("--model", required=True, metavar="DIR", help="fine-tuned model directory")
    evaluate.add_argument("--data", required=True, metavar="FILE", help="labelled file to score")
    evaluate.add_argument("--out", metavar="FILE", help="also write the metrics as JSON here")
    add_inference_flags(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    predict = verbs.add_parser("predict", help="predict a file with a fine-tuned model", allow_abbrev=False)
    predict.add_argument("--model", required=True, metavar="DIR", help="fine-tuned model directory")
    predict.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="CoNLL (a tag column is appended) or plain text, one text per line (JSON lines of "
        "entities are written)",
    )
    predict.add_argument("--out", required=True, metavar="FILE", help="where to write the predictions")
    add_inference_flags(predict)
    predict.set_defaults(func=run_predict)


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=64, help="windows per batch (default 64)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument(
        "--format",
        default=None,
        choices=("auto", "conll", "jsonl", "spans", "text"),
        help="input format (default: detected)",
    )
    parser.add_argument(
        "--on-bad-line",
        default=None,
        choices=("error", "warn"),
        help="stop at a malformed line (default) or count it and go on",
    )


def load_predictor(args: argparse.Namespace) -> Any:
    from bertkit.inference.predictor import Predictor

    predictor = Predictor.load(args.model, precision=args.precision, batch_size=args.batch_size)
    if args.format:
        predictor.task.data_cfg.format = args.format
    if args.on_bad_line:
        predictor.task.data_cfg.on_bad_line = args.on_bad_line
    return predictor


def run_evaluate(args: argparse.Namespace) -> int:
    from bertkit.reporting.tables import format_table

    metrics = load_predictor(args).evaluate(args.data)
    print(format_table({args.model: metrics}, f"{args.data}"))
    if args.out:
        write_json(args.out, metrics)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    count = load_predictor(args).predict_file(args.input, args.out)
    log.info("wrote predictions for %d records to %s", count, args.out)
    return 0
