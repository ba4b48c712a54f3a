"""``bertkit report DIR``: a run's metrics and plots on one page."""

from __future__ import annotations

import argparse


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    report = verbs.add_parser(
        "report", help="render a run's metrics and plots as one page", allow_abbrev=False
    )
    report.add_argument("run_dir", metavar="DIR", help="output directory of a fine-tuning run")
    report.add_argument(
        "--format", default="md", choices=("md", "html"), help="Markdown or self-contained HTML"
    )
    report.add_argument("--out", metavar="FILE", help="where to write it (default DIR/report.FORMAT)")
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from bertkit.reporting.report import write_report

    print(write_report(args.run_dir, args.format, args.out))
    return 0
