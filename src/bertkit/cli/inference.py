"""``bertkit evaluate`` and ``bertkit predict``: a saved model on a labelled file, or on new input.

The paths and numbers given are checked before the model is loaded, so a typo costs no waiting.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bertkit.atomic import write_json
from bertkit.errors import BertkitError
from bertkit.tasks import TASKS

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
        help="the records to predict, in the format of the model's task; "
        + "; ".join(f"{name}: {task.predict_io}" for name, task in TASKS.items()),
    )
    predict.add_argument("--out", required=True, metavar="FILE", help="where to write the predictions")
    add_inference_flags(predict)
    predict.set_defaults(func=run_predict)


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=64, help="windows per batch, >= 1 (default 64)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads (default 0: $OMP_NUM_THREADS when set, else the cores this process may use)",
    )
    add_adapt_threads_flag(parser)
    parser.add_argument(
        "--engine",
        default="torch",
        choices=("torch", "onnx"),
        help="torch runs the saved weights (default); onnx runs the model.onnx of a `bertkit export` folder",
    )
    add_precision_flag(parser)
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
    add_generation_flags(parser)
    add_layout_flags(parser)


# Where the input file holds what the model reads, when it differs from the training files' layout
# (GLUE's test files have other columns than train): flag -> (task, field of its config, type).
LAYOUT_FLAGS = {
    "--text-column": ("classify", "text_column", str),
    "--pair-column": ("classify", "pair_column", str),
    "--label-column": ("classify", "label_column", str),
    "--header": ("classify", "header", str),
    "--token-column": ("ner", "token_column", int),
    "--tag-column": ("ner", "tag_column", int),
    "--source-field": ("seq2seq", "source_field", str),
    "--target-field": ("seq2seq", "target_field", str),
}


def add_layout_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "input layout (default: the training files', from the model's run.yaml)"
    )
    for flag, (task, field, kind) in LAYOUT_FLAGS.items():
        extra = {"choices": ("auto", "yes", "no")} if field == "header" else {"metavar": "COLUMN"}
        group.add_argument(
            flag, dest=f"layout_{field}", type=kind, default=None, help=f"{task} models", **extra
        )


def layout_options(args: argparse.Namespace, model_dir: str) -> dict[str, Any]:
    """The layout flags given, as task options; refused for a model of another task."""
    given = {
        flag: (task, field, getattr(args, f"layout_{field}"))
        for flag, (task, field, _) in LAYOUT_FLAGS.items()
        if getattr(args, f"layout_{field}", None) is not None
    }
    if not given:
        return {}
    from bertkit.inference.predictor import saved_run_config

    family = saved_run_config(model_dir).task_name
    for flag, (task, _, _) in given.items():
        if task != family:
            raise BertkitError(f"{flag} is for {task} models; {model_dir} is a {family} model")
    return {field: value for task, field, value in given.values()}


# seq2seq generation settings a saved model's run.yaml holds, overridable at evaluate/predict time
GENERATION_FLAGS = {
    "--num-beams": ("num_beams", int, "beam size (1: greedy)"),
    "--max-new-tokens": ("max_new_tokens", int, "most sub-words generated"),
    "--min-new-tokens": ("min_new_tokens", int, "fewest sub-words generated"),
    "--length-penalty": ("length_penalty", float, "beam search: > 1 favours longer outputs"),
    "--no-repeat-ngram-size": ("no_repeat_ngram_size", int, "never repeat an n-gram of this size"),
    "--temperature": ("temperature", float, "sampling temperature"),
    "--top-k": ("top_k", int, "sampling: keep the k likeliest sub-words"),
    "--top-p": ("top_p", float, "sampling: keep the smallest set with this probability"),
    "--generation-seed": ("generation_seed", int, "seed of sampling"),
}


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation (seq2seq models; default: the model's run.yaml)")
    for flag, (dest, kind, help_text) in GENERATION_FLAGS.items():
        group.add_argument(flag, dest=f"gen_{dest}", type=kind, default=None, metavar="N", help=help_text)
    group.add_argument(
        "--sample", dest="gen_do_sample", action="store_const", const=True, default=None, help="sample"
    )


def generation_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name.removeprefix("gen_"): value
        for name, value in vars(args).items()
        if name.startswith("gen_") and value is not None
    }


def check_args(args: argparse.Namespace, input_flag: str, source: str) -> None:
    """Refuse bad numbers, a model or input that is not there, and an output that is a directory."""
    if args.batch_size < 1:
        raise BertkitError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads < 0:
        raise BertkitError(f"--threads must be >= 0, got {args.threads}")
    if Path(args.model).is_file():
        raise BertkitError(f"--model {args.model} is a file; it takes a fine-tuned model directory")
    if not Path(args.model).is_dir():
        raise BertkitError(f"--model {args.model}: no such directory")
    if getattr(args, "engine", "torch") == "onnx":
        from bertkit.inference.onnx_engine import onnx_file

        onnx_file(args.model, args.precision)  # no export there, or bf16: one line before loading
    if Path(source).is_dir():
        raise BertkitError(f"{input_flag} {source} is a directory; it takes a file")
    if not Path(source).is_file():
        raise BertkitError(f"{input_flag} {source}: no such file")
    if args.out and Path(args.out).is_dir():
        raise BertkitError(f"--out {args.out} is a directory; it takes the file to write")


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "int8"),
        help="auto: bf16 where the CPU multiplies in bf16, else fp32 (torch), fp32 (onnx); int8: dynamic "
        "quantisation (torch) or model.int8.onnx (onnx); bf16 is torch only",
    )


def add_adapt_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-adapt-threads",
        dest="adapt_threads",
        action="store_false",
        help="keep the thread count fixed (default: fewer threads while other processes keep the cores busy)",
    )


def load_predictor(args: argparse.Namespace) -> Any:
    from bertkit.inference.predictor import Predictor

    predictor = Predictor.load(
        args.model,
        precision=args.precision,
        batch_size=args.batch_size,
        threads=args.threads,
        engine=args.engine,
        task_options={**generation_options(args), **layout_options(args, args.model)},
        adapt_threads=args.adapt_threads,
    )
    if args.format:
        predictor.task.data_cfg.format = args.format
    if args.on_bad_line:
        predictor.task.data_cfg.on_bad_line = args.on_bad_line
    return predictor


def run_evaluate(args: argparse.Namespace) -> int:
    from bertkit.reporting.tables import format_table

    check_args(args, "--data", args.data)
    metrics = load_predictor(args).evaluate(args.data)
    print(format_table({args.model: metrics}, f"{args.data}"))
    if args.out:
        write_json(args.out, metrics)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    check_args(args, "--input", args.input)
    count = load_predictor(args).predict_file(args.input, args.out)
    log.info("wrote predictions for %d records to %s", count, args.out)
    return 0
