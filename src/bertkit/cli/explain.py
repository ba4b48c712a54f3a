"""``bertkit explain``: which words a saved model's predictions rest on, as a shaded HTML page.

The page (``--out report.html``) has a JSON lines file of the raw scores beside it (``report.jsonl``).
The paths and numbers are checked before the model is loaded.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bertkit.errors import BertkitError

log = logging.getLogger("bertkit")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    explain = verbs.add_parser(
        "explain",
        help="explain a fine-tuned model's predictions word by word (HTML page + JSON lines)",
        allow_abbrev=False,
    )
    explain.add_argument("--model", required=True, metavar="DIR", help="fine-tuned model directory")
    explain.add_argument(
        "--input", required=True, metavar="FILE", help="records to explain, as `bertkit predict` reads them"
    )
    explain.add_argument(
        "--out", required=True, metavar="FILE", help="the HTML page; the scores go to FILE with .jsonl"
    )
    explain.add_argument(
        "--method",
        default="ig",
        choices=("ig", "attention", "occlusion"),
        help="ig: integrated gradients over the token embeddings (default); occlusion: each word masked "
        "in turn; attention: last-layer attention (cheap, not faithful)",
    )
    explain.add_argument(
        "--target",
        metavar="LABEL",
        help="explain this class (classify, re) or entity type (ner) instead of the prediction",
    )
    explain.add_argument("--n-steps", type=int, default=50, metavar="N", help="IG steps (default 50)")
    explain.add_argument(
        "--internal-batch-size",
        type=int,
        default=16,
        metavar="N",
        help="IG steps per forward/backward pass: bounds memory (default 16)",
    )
    explain.add_argument("--limit", type=int, metavar="N", help="explain only the first N records")
    explain.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")
    explain.add_argument(
        "--threads", type=int, default=0, metavar="N", help="CPU threads (default 0: as predict chooses)"
    )
    explain.set_defaults(func=run_explain)


def check_args(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--n-steps", args.n_steps),
        ("--internal-batch-size", args.internal_batch_size),
        ("--batch-size", args.batch_size),
        ("--limit", args.limit or 1),
    ):
        if value < 1:
            raise BertkitError(f"{flag} must be >= 1, got {value}")
    if args.threads < 0:
        raise BertkitError(f"--threads must be >= 0, got {args.threads}")
    if not Path(args.model).is_dir():
        raise BertkitError(f"--model {args.model}: no such directory")
    if not Path(args.input).is_file():
        raise BertkitError(f"--input {args.input}: no such file")
    if Path(args.out).is_dir():
        raise BertkitError(f"--out {args.out} is a directory; it takes the HTML file to write")


def run_explain(args: argparse.Namespace) -> int:
    check_args(args)
    from bertkit.inference.explain import ExplainOptions, explain_records
    from bertkit.inference.predictor import Predictor
    from bertkit.reporting.explain_page import write_explanations

    options = ExplainOptions(
        args.method, args.n_steps, args.internal_batch_size, args.batch_size, args.target
    )
    # fp32: integrated gradients' completeness does not hold to 5% in bf16
    predictor = Predictor.load(args.model, precision="fp32", batch_size=args.batch_size, threads=args.threads)
    records = predictor.task.read(args.input, labelled=False)[: args.limit]
    predictions = predictor.predict_records(records)
    rows = explain_records(
        predictor.task, predictor.model, records, predictions, options, predictor.runtime.device
    )
    lines = write_explanations(rows, args.out, f"bertkit explain: {Path(args.model).name} ({args.method})")
    log.info("explained %d records (%d targets): %s, scores in %s", len(records), len(rows), args.out, lines)
    return 0
