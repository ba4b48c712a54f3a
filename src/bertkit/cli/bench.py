"""``bertkit bench``: the speed suite against the Hugging Face references, one table."""

from __future__ import annotations

import argparse


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    from bertkit.recipes.bench import DEFAULT_SUITES, SUITES

    bench = verbs.add_parser(
        "bench",
        help="run the speed suite (bertkit against Trainer with bf16) and print one table",
        description="Runs the scripts of a source checkout's benchmarks/ folder, each variant in its own "
        "process, and prints throughput, the ratio to each reference, quality, peak memory and MFU. "
        "Compare figures only within one run: they depend on the CPU and on what else runs.",
        allow_abbrev=False,
    )
    bench.add_argument(
        "--suites",
        default=",".join(DEFAULT_SUITES),
        help=f"comma-separated, from: {', '.join(f'{k} ({v.what})' for k, v in SUITES.items())}",
    )
    bench.add_argument(
        "--quick", action="store_true", help="a few minutes: small samples, one epoch, one reference"
    )
    bench.add_argument("--model", help="model directory for the suites that take one (default: MiniLM)")
    bench.add_argument("--data-dir", help="where the data sets live (default $BERTKIT_DATA_DIR)")
    bench.add_argument("--benchmarks", metavar="DIR", help="the benchmark scripts (default ./benchmarks)")
    bench.add_argument("--out", metavar="FILE", help="write the table as JSON (the scripts' logs beside it)")
    bench.add_argument("--logs", metavar="DIR", help="where each suite's own output goes")
    bench.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from bertkit.recipes.bench import bench

    suites = [s for s in args.suites.split(",") if s]
    bench(suites, args.quick, args.model, args.data_dir, args.benchmarks, args.out, args.logs)
    return 0
