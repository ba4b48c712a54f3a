"""``bertkit probe``: a bias probe of a fine-tuned classifier or NER model on counterfactual sentences.

Templates and word lists are read and checked before the model is loaded, so a typo costs no waiting.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bertkit.errors import BertkitError

log = logging.getLogger("bertkit")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    probe = verbs.add_parser(
        "probe",
        help="compare a model's predictions on sentences that differ only in a name, nationality, ...",
        description="Fill every template with every word of every group (bundled English and Chinese "
        "lists of names by perceived gender and origin, nationalities, religions, gendered words; or "
        "your own), predict them all, and report per group the mean probability of a class "
        "(classification) or the recall of the slot's word as an entity (NER), the gaps between "
        "groups and the flip rate of counterfactual pairs. Writes probe.json, probe.md, probe.png and "
        "fillings.jsonl to --out.",
        allow_abbrev=False,
    )
    probe.add_argument("--model", required=True, metavar="DIR", help="fine-tuned classify or ner model")
    probe.add_argument(
        "--templates",
        default="builtin:en",
        metavar="FILE",
        help='one template per line, slots like {name}, or JSON lines {"template": ..., "slots": '
        '{"name": {"entity": "person", "groups": [...]}}}; \'#\' starts a comment line; or a '
        "bundled set: builtin:en (default), builtin:zh",
    )
    probe.add_argument(
        "--words",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML or JSON word lists, slot -> group -> [words]; each slot given replaces the bundled "
        "slot of that name (repeatable; builtin:en / builtin:zh add a bundled set). The bundled lists of "
        "the templates' language are always there",
    )
    probe.add_argument("--out", required=True, metavar="DIR", help="folder for the report files")
    probe.add_argument(
        "--class",
        dest="focus",
        metavar="LABEL",
        help="classify: the class compared "
        "(default: the second of two classes, else the first that is not predicted most)",
    )
    probe.add_argument(
        "--entity",
        action="append",
        default=[],
        metavar="SLOT=TYPE",
        help="ner: the entity type the slot's word should be found as (default: person for {name}, "
        "location for {province}, when the model has such a type; else any type)",
    )
    probe.add_argument(
        "--pairs",
        default="index",
        choices=("index", "all"),
        help="counterfactual pairs: the i-th word of one group with the i-th of the other (default), "
        "or every word of one with every word of the other",
    )
    probe.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="resamples per interval (0: none)"
    )
    probe.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    probe.add_argument("--top", type=int, default=10, metavar="N", help="largest gaps listed (default 10)")
    probe.add_argument("--batch-size", type=int, default=64, help="windows per batch, >= 1 (default 64)")
    probe.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads (default 0: all)")
    probe.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"))
    probe.add_argument("--engine", default="torch", choices=("torch", "onnx"))
    probe.set_defaults(func=run_probe_command)


def entity_options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        slot, sep, kind = pair.partition("=")
        if not sep or not slot or not kind:
            raise BertkitError(f"--entity {pair!r}: expected SLOT=TYPE, e.g. name=person")
        out[slot] = kind
    return out


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad numbers, a model that is not there and an output that is a file."""
    for flag, value, least in (
        ("--batch-size", args.batch_size, 1),
        ("--bootstrap", args.bootstrap, 0),
        ("--threads", args.threads, 0),
        ("--top", args.top, 0),
    ):
        if value < least:
            raise BertkitError(f"{flag} must be >= {least}, got {value}")
    if not Path(args.model).is_dir():
        raise BertkitError(f"--model {args.model}: no such directory")
    if Path(args.out).is_file():
        raise BertkitError(f"--out {args.out} is a file; it takes a directory")


def read_inputs(args: argparse.Namespace) -> tuple[list, dict]:
    """The templates and the word lists: those of the templates' language, with --words over them."""
    from bertkit.inference.probe_templates import (
        BUILTIN,
        check_templates,
        load_templates,
        load_words,
        template_language,
    )

    templates = load_templates(args.templates)
    language = args.templates.removeprefix(BUILTIN) if args.templates.startswith(BUILTIN) else None
    words = load_words(language or template_language(templates), args.words)
    check_templates(templates, words)
    return templates, words


def run_probe_command(args: argparse.Namespace) -> int:
    from bertkit.inference.predictor import Predictor
    from bertkit.inference.probe import ProbeOptions, run_probe, write_probe

    check_args(args)
    options = ProbeOptions(
        focus=args.focus,
        entities=entity_options(args.entity),
        pairing=args.pairs,
        n_boot=args.bootstrap,
        seed=args.seed,
        top=args.top,
    )
    templates, words = read_inputs(args)
    predictor = Predictor.load(
        args.model,
        precision=args.precision,
        batch_size=args.batch_size,
        threads=args.threads,
        engine=args.engine,
    )
    run = run_probe(predictor, templates, words, options)
    about = {"model": str(args.model), "templates_file": args.templates, "words_files": args.words}
    out = write_probe(run, args.out, about)
    for gap in run.summary["largest_gaps"][:3]:
        log.info(
            "gap {%s} %s - %s: %+.3f [%s, %s], flip rate %s",
            *(gap[k] for k in ("slot", "a", "b", "gap", "low", "high", "flip_rate")),
        )
    print(f"probe: {run.summary['fillings']} fillings; report in {out / 'probe.md'}")
    return 0
