"""``bertkit datasets [NAME]``: list the registered data sets, or resolve (download) one."""

from __future__ import annotations

import argparse
import json

from bertkit.data import registry


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    data = verbs.add_parser("datasets", help="list registered data sets, or fetch one", allow_abbrev=False)
    data.add_argument("name", nargs="?", help="data set to resolve (downloaded when missing)")
    data.add_argument("--data-dir", help="where data sets live (default $BERTKIT_DATA_DIR or the user cache)")
    data.set_defaults(func=run_datasets)


def run_datasets(args: argparse.Namespace) -> int:
    if args.name:
        for split, path in registry.resolve(args.name, args.data_dir).items():
            print(f"{split}\t{path}")
        return 0
    for name, spec in sorted(registry.DATASETS.items()):
        print(
            json.dumps(
                {"name": name, "task": spec.task, "splits": sorted(spec.splits), "licence": spec.licence}
            )
        )
    return 0
