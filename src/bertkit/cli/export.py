"""``bertkit export``: a fine-tuned model as ONNX (optionally int8 too), checked against PyTorch.

The folder it writes is what ``bertkit predict --engine onnx`` and ``bertkit serve --engine onnx`` run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bertkit.errors import BertkitError

log = logging.getLogger("bertkit")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser(
        "export",
        help="export a fine-tuned model to ONNX for --engine onnx",
        description="Export a fine-tuned model to ONNX with dynamic batch and sequence axes. The export is "
        "run in onnxruntime against PyTorch and refused (nothing written) when any fp32 output differs "
        "by more than 1e-4.",
        allow_abbrev=False,
    )
    export.add_argument("--model", required=True, metavar="DIR", help="fine-tuned model directory")
    export.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new or empty)")
    export.add_argument("--format", default="onnx", choices=("onnx",), help="export format (default onnx)")
    export.add_argument(
        "--quantize",
        default=None,
        choices=("int8",),
        help="also write model.int8.onnx (onnxruntime dynamic quantisation of the matmul weights)",
    )
    export.add_argument(
        "--samples",
        metavar="FILE",
        help="inputs to check the export on, in the format `bertkit predict --input` reads "
        "(default: random token ids)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace --out if it holds files")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    if Path(args.model).is_file() or not Path(args.model).is_dir():
        raise BertkitError(f"--model {args.model}: not a directory; it takes a fine-tuned model directory")
    if args.samples and not Path(args.samples).is_file():
        raise BertkitError(f"--samples {args.samples}: no such file")
    from bertkit.recipes.export import export_model_dir

    report = export_model_dir(args.model, args.out, args.quantize, args.samples, args.overwrite)
    fp32 = report["fp32"]
    log.info(
        "wrote %s: model.onnx (%.1f MB), max |onnx - torch| %.1e",
        args.out,
        fp32["bytes"] / 1e6,
        fp32["max_abs_diff"],
    )
    if "int8" in report:
        int8 = report["int8"]
        log.info(
            "model.int8.onnx (%.1f MB, %.2fx fp32): max |int8 - torch| %.3g, same argmax %.1f%%",
            int8["bytes"] / 1e6,
            int8["bytes"] / fp32["bytes"],
            int8["max_abs_diff"],
            100 * int8["argmax_agreement"],
        )
    return 0
