"""The ``bertkit`` command: one sub-command per job, flags generated from the config dataclasses."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from bertkit import datasets
from bertkit.atomic import write_json
from bertkit.config import (
    SECTIONS,
    RunConfig,
    add_config_arguments,
    build_config,
    load_yaml,
    merge,
    overrides_from_args,
)
from bertkit.errors import BertkitError
from bertkit.tasks import TASKS
from bertkit.tune import TuneConfig

log = logging.getLogger("bertkit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description=__doc__, allow_abbrev=False)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    finetune = verbs.add_parser("finetune", help="fine-tune a model on a task", allow_abbrev=False)
    add_task_parsers(finetune, run_finetune)
    tune = verbs.add_parser(
        "tune", help="search learning rate, batch size, epochs and warm-up on dev", allow_abbrev=False
    )
    for sub in add_task_parsers(tune, run_tune, {"tune": TuneConfig}):
        sub.add_argument("--trials", type=int, default=20, metavar="N", help="fine-tuning runs to try")

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

    report = verbs.add_parser(
        "report", help="render a run's metrics and plots as one page", allow_abbrev=False
    )
    report.add_argument("run_dir", metavar="DIR", help="output directory of a fine-tuning run")
    report.add_argument(
        "--format", default="md", choices=("md", "html"), help="Markdown or self-contained HTML"
    )
    report.add_argument("--out", metavar="FILE", help="where to write it (default DIR/report.FORMAT)")
    report.set_defaults(func=run_report)

    data = verbs.add_parser("datasets", help="list registered data sets, or fetch one", allow_abbrev=False)
    data.add_argument("name", nargs="?", help="data set to resolve (downloaded when missing)")
    data.add_argument("--data-dir", help="where data sets live (default $BERTKIT_DATA_DIR or the user cache)")
    data.set_defaults(func=run_datasets)
    return parser


def add_task_parsers(
    verb: argparse.ArgumentParser,
    func: Callable[[argparse.Namespace], int],
    extra: dict[str, type] | None = None,
) -> list[argparse.ArgumentParser]:
    """One sub-command per task family, with ``--config`` and a flag for every field of its sections."""
    tasks = verb.add_subparsers(dest="task", required=True, metavar="TASK")
    parsers = []
    for name, task_cls in TASKS.items():
        sub = tasks.add_parser(
            name,
            help=(task_cls.__doc__ or name).strip().splitlines()[0],
            allow_abbrev=False,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        sub.add_argument("--config", metavar="YAML", help="run.yaml to start from; flags override it")
        add_config_arguments(sub, {**SECTIONS, name: task_cls.config_class, **(extra or {})})
        sub.set_defaults(func=func)
        parsers.append(sub)
    return parsers


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


def run_finetune(args: argparse.Namespace) -> int:
    from bertkit.finetune import finetune

    finetune(config_from_args(args))
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from bertkit.tune import tune, tune_config

    tune(config_from_args(args), tune_config(overrides_from_args(args).get("tune", {})), args.trials)
    return 0


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's config: defaults < a registered data set's needs < ``--config`` YAML < flags."""
    overrides: dict[str, Any] = {}
    cli = overrides_from_args(args)
    cli.pop("tune", None)  # the search space of `bertkit tune`, not part of a run
    dataset = cli.get("data", {}).get("dataset")
    if args.config:
        overrides = load_yaml(args.config)
        if overrides.get("task", args.task) != args.task:
            raise BertkitError(f"{args.config} is a {overrides['task']!r} config, not {args.task!r}")
        dataset = dataset or overrides.get("data", {}).get("dataset")
    if dataset:  # the data set's own needs (e.g. Weibo's position suffixes) sit under the user's choices
        overrides = merge(datasets.get_spec(dataset).config, overrides)
    return build_config(args.task, TASKS[args.task].config_class, merge(overrides, cli))


def load_predictor(args: argparse.Namespace) -> Any:
    from bertkit.predict import Predictor

    predictor = Predictor.load(args.model, precision=args.precision, batch_size=args.batch_size)
    if args.format:
        predictor.task.data_cfg.format = args.format
    if args.on_bad_line:
        predictor.task.data_cfg.on_bad_line = args.on_bad_line
    return predictor


def run_evaluate(args: argparse.Namespace) -> int:
    from bertkit.evaluate import format_table

    metrics = load_predictor(args).evaluate(args.data)
    print(format_table({args.model: metrics}, f"{args.data}"))
    if args.out:
        write_json(args.out, metrics)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    count = load_predictor(args).predict_file(args.input, args.out)
    log.info("wrote predictions for %d records to %s", count, args.out)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bertkit.report import write_report

    print(write_report(args.run_dir, args.format, args.out))
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    if args.name:
        for split, path in datasets.resolve(args.name, args.data_dir).items():
            print(f"{split}\t{path}")
        return 0
    for name, spec in sorted(datasets.DATASETS.items()):
        print(
            json.dumps(
                {"name": name, "task": spec.task, "splits": sorted(spec.splits), "licence": spec.licence}
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except BertkitError as err:
        print(f"bertkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "bertkit: interrupted. A fine-tuning run keeps the state of its last evaluation in "
            "OUT/checkpoint; continue it with --resume OUT",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
