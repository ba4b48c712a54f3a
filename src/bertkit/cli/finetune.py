"""``bertkit finetune TASK`` and ``bertkit tune TASK``: one sub-command per task family, every config
field a flag, and the config resolved as defaults < a data set's needs < ``--config`` YAML < flags."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bertkit.cli.launch import add_nproc_argument
from bertkit.config import (
    SECTIONS,
    RunConfig,
    add_config_arguments,
    build_config,
    load_yaml,
    merge,
    overrides_from_args,
    resumed_run_yaml,
)
from bertkit.data import registry
from bertkit.errors import BertkitError
from bertkit.recipes.tune import TuneConfig
from bertkit.tasks import TASKS


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    finetune = verbs.add_parser("finetune", help="fine-tune a model on a task", allow_abbrev=False)
    for sub in add_task_parsers(finetune, run_finetune):
        add_nproc_argument(sub)
    tune = verbs.add_parser(
        "tune", help="search learning rate, batch size, epochs and warm-up on dev", allow_abbrev=False
    )
    for sub in add_task_parsers(tune, run_tune, {"tune": TuneConfig}):
        sub.add_argument("--trials", type=int, default=20, metavar="N", help="fine-tuning runs to try")


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


def run_finetune(args: argparse.Namespace) -> int:
    from bertkit.recipes.finetune import finetune

    finetune(config_from_args(args))
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from bertkit.recipes.tune import tune, tune_config

    tune(config_from_args(args), tune_config(overrides_from_args(args).get("tune", {})), args.trials)
    return 0


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's config: defaults < a registered data set's needs < ``--config`` YAML (for ``--resume
    DIR`` without one, ``DIR/run.yaml``) < flags."""
    overrides: dict[str, Any] = {}
    cli = overrides_from_args(args)
    cli.pop("tune", None)  # the search space of `bertkit tune`, not part of a run
    dataset = cli.get("data", {}).get("dataset")
    config = args.config or resumed_run_yaml(cli)  # --resume DIR alone: the run's own run.yaml
    if config:
        overrides = load_yaml(config)
        if overrides.get("task", args.task) != args.task:
            raise BertkitError(f"{config} is a {overrides['task']!r} config, not {args.task!r}")
        dataset = dataset or overrides.get("data", {}).get("dataset")
    if dataset:  # the data set's own needs (e.g. Weibo's position suffixes) sit under the user's choices
        overrides = merge(registry.get_spec(dataset).config, overrides)
    return build_config(args.task, TASKS[args.task].config_class, merge(overrides, cli))
