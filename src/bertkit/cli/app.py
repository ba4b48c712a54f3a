"""The ``bertkit`` command: the parser built from one module per verb, and error handling for all."""

from __future__ import annotations

import argparse
import logging
import sys

from bertkit.cli import (
    bench,
    curve,
    datasets,
    explain,
    export,
    finetune,
    inference,
    pretrain,
    probe,
    report,
    serve,
)
from bertkit.cli.launch import launch, wants_launch
from bertkit.errors import BertkitError
from bertkit.training.distributed import close_process_group

VERBS = (finetune, pretrain, inference, explain, serve, export, report, datasets, curve, probe, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description=__doc__, allow_abbrev=False)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.add_parsers(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if wants_launch(args):
            return launch(argv, args.nproc)
        return args.func(args)
    except BertkitError as err:
        print(f"bertkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # training stops on Ctrl-C or SIGTERM with a checkpoint and says so (exit code 130 or 143)
        print(
            f"bertkit: {err}"
            if str(err)
            else "bertkit: interrupted. A fine-tuning run keeps its last checkpoint in OUT/checkpoint; "
            "continue it with --resume OUT",
            file=sys.stderr,
        )
        return getattr(err, "exit_code", 130)
    finally:
        close_process_group()


if __name__ == "__main__":
    sys.exit(main())
