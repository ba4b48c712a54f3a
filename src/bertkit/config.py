"""Typed configuration: one set of dataclasses that is the YAML file, the CLI flags and the Python API.

Precedence is defaults < ``--config run.yaml`` < command-line flags. Every field is reachable as
``--section.field`` (``--train.lr 3e-5``); the common ones also have short forms (``--lr``) declared
in the field's metadata. Task families add their own section (``ner:``, ``classify:``) as a dataclass.
A field's bounds (``gt``, ``ge``, ``lt``, ``le``) live in its metadata too: ``--help`` shows them and
``build_config`` checks them, so a bad value is one clear line however it was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import operator
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bertkit.errors import BertkitError

# bound name -> (test, symbol); the tests are written so that NaN fails every bound
BOUNDS = {
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
}


def option(
    default: Any,
    help: str,
    *flags: str,
    choices: tuple[str, ...] | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    nargs: str | None = None,
) -> Any:
    """A config field with help text, optional short CLI flags, allowed values and numeric bounds.

    ``nargs="+"`` lets a list field take several values after one flag (``--input a.txt b/``)."""
    bounds = {k: v for k, v in {"gt": gt, "ge": ge, "lt": lt, "le": le}.items() if v is not None}
    meta = {"help": help, "flags": flags, "choices": choices, "bounds": bounds, "nargs": nargs}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# [CLS] and [SEP] (three specials for a pair) must leave room for text
MIN_MAX_LENGTH = 8


@dataclass
class DataConfig:
    train: str | None = option(None, "training file (CoNLL, JSON lines, span JSON)", "--train")
    dev: str | None = option(None, "dev file; without it a seeded split of train is used", "--dev")
    test: str | None = option(None, "test file, evaluated before and after fine-tuning", "--test")
    dataset: str | None = option(
        None, "a registered data set name (e.g. wnut17) instead of files", "--dataset"
    )
    data_dir: str | None = option(
        None, "where registered data sets live (default $BERTKIT_DATA_DIR or the user cache)", "--data-dir"
    )
    format: str = option("auto", "input format", choices=("auto", "conll", "jsonl", "spans", "text"))
    on_bad_line: str = option(
        "error", "stop at a malformed line, or count it and go on", "--on-bad-line", choices=("error", "warn")
    )
    dev_fraction: float = option(0.1, "share of train held out as dev when no dev file is given", gt=0, lt=1)


@dataclass
class ModelConfig:
    name_or_path: str | None = option(None, "local model directory or hub id", "--model")
    revision: str | None = option(None, "hub revision (branch, tag or commit) when loading from the hub")
    trust_remote_code: bool = option(False, "allow model code from the hub (off unless you ask)")
    max_length: int = option(
        128, "sub-word tokens per window, special tokens included", "--max-length", ge=MIN_MAX_LENGTH
    )
    stride: int = option(
        32,
        "sub-word tokens shared by consecutive windows of a long input; below max_length (the default "
        "shrinks to fit short windows)",
        "--stride",
        ge=0,
    )
    pad_multiple: int = option(
        8,
        "pad each batch to a multiple of this many tokens (1: to its longest window; shorter batches "
        "round in smaller steps, adding at most an eighth); fewer distinct tensor shapes keep the kernel "
        "cache and the heap smaller",
        ge=1,
    )
    freeze_embeddings: bool = option(False, "do not train the embedding layer")
    freeze_layers: int = option(0, "do not train the bottom K encoder layers", ge=0)
    cache_frozen: bool = option(
        True,
        "with the embeddings and bottom layers frozen, compute their output once per window and reuse it "
        "at every epoch and dev evaluation (the frozen part then runs without dropout)",
    )
    frozen_dropout: bool = option(
        True, "dropout in the frozen layers when they are not cached (false: what the cache computes)"
    )
    dropout: float | None = option(
        None, "override the model's dropout probabilities (hidden layers and attention)", ge=0, lt=1
    )
    peft: str = option(
        "none",
        "parameter-efficient fine-tuning: lora trains low-rank adapters (see the lora options) and the head",
        "--peft",
        choices=("none", "lora"),
    )


@dataclass
class TrainConfig:
    epochs: float = option(3.0, "passes over the training data", "--epochs", gt=0)
    max_steps: int = option(0, "stop after this many optimizer steps (0: run all epochs)", "--steps", ge=0)
    lr: float = option(5e-5, "peak learning rate", "--lr", ge=0)
    batch_size: int = option(32, "examples (windows) per optimizer step", "--batch-size", ge=1)
    grad_accum: int = option(1, "micro-batches accumulated per optimizer step", ge=1)
    weight_decay: float = option(0.01, "AdamW decoupled weight decay (never on biases and LayerNorm)", ge=0)
    warmup_ratio: float = option(0.1, "share of steps with linear learning-rate warm-up", ge=0, le=1)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: off)", ge=0)
    eval_every: int = option(0, "evaluate on dev every N steps (0: after each epoch)", ge=0)
    save_every: int = option(
        0, "save a training state for --resume every N steps (0: at each evaluation)", ge=0
    )
    patience: int = option(0, "stop after N evaluations without dev improvement (0: never)", ge=0)
    seed: int = option(42, "seed for weights of new heads, shuffling and dropout", "--seed")
    precision: str = option(
        "auto",
        "matmul precision (auto: bf16 where the hardware has it)",
        "--precision",
        choices=("auto", "fp32", "bf16"),
    )
    threads: int = option(
        0, "CPU threads (0: $OMP_NUM_THREADS if set, else this process's share of the cores)", ge=0
    )
    adapt_threads: bool = option(
        True,
        "on the CPU, use fewer threads while other processes keep cores busy and the full count again "
        "when they stop (spinning threads lose half their fair share to a neighbour otherwise)",
    )
    fast_dropout: bool = option(
        True,
        "on the CPU, draw dropout masks from 16 random bits per element (about 4x cheaper than torch's; "
        "a third of a step goes to attention dropout at 300 sub-words); off: torch's own dropout",
    )
    bf16_stream: bool = option(
        True,
        "under bf16, cast the embeddings' output to bf16 so that the residual stream between the layers "
        "is bf16 (Megatron-LM's default), not fp32 cast again at every linear layer; the weights and "
        "the optimizer stay fp32. off: the fp32 stream of torch's autocast alone",
    )
    compact_embeddings: bool = option(
        True,
        "train only the word-embedding rows of tokens the training data holds, as one smaller "
        "parameter (the same weights: the others get zero gradients; a third of a MiniLM step on "
        "SST-2 goes to the whole matrix); off: the whole matrix",
    )
    log_every: int = option(10, "write a training-log line every N steps", ge=1)
    resume: str | None = option(None, "continue the interrupted run saved in this directory", "--resume")


@dataclass
class OutputConfig:
    dir: str | None = option(None, "output directory for the model, metrics, log and plots", "--out")
    plot: bool = option(True, "write curves.png")
    before: bool = option(
        True,
        "score the evaluation split before training too (metrics.json's before column: the untrained "
        "head, or for pretraining the starting model); false saves one pass over it",
    )
    checkpoint: bool = option(
        True, "keep a training state for --resume (at each evaluation, or every --train.save_every steps)"
    )
    overwrite: bool = option(
        False,
        "start afresh in an output directory that holds an earlier run (its files are removed)",
        "--overwrite",
    )


@dataclass
class LoraConfig:
    """LoRA adapters (``--peft lora``), trained with the task head and any added token embeddings.

    A LoRA run saves the adapter in ``OUT/adapter/`` and the adapters merged into the weights as the
    plain model in ``OUT``, which predict, serve, export and ``transformers`` use as they are."""

    r: int = option(8, "rank of the low-rank update", ge=1)
    alpha: float = option(16.0, "scaling: the update is multiplied by alpha / r", gt=0)
    dropout: float = option(0.1, "dropout on the adapters' input", ge=0, lt=1)
    targets: list[str] = option(
        ["query", "value"],
        "linear layers that get adapters, by the last part of their name (query, key, value, dense, ...)",
    )


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "output": OutputConfig,
    "lora": LoraConfig,
}


@dataclass
class RunConfig:
    """Everything a run needs; ``task`` holds the task family's own dataclass."""

    task_name: str
    task: Any
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

    def sections(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "model": self.model,
            "train": self.train,
            "output": self.output,
            "lora": self.lora,
            self.task_name: self.task,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task_name, **{k: dataclasses.asdict(v) for k, v in self.sections().items()}}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def validate(self) -> RunConfig:
        """Check every field's bounds and the fields that depend on each other; return self.

        ``build_config`` calls it; call it yourself on a config built or changed in Python.
        """
        for name, section in self.sections().items():
            check_bounds(name, section)
        model, default_stride = self.model, ModelConfig.stride
        # the default stride shrinks to fit short windows (the task warns); a chosen one must fit
        if model.stride != default_stride and model.stride >= model.max_length:
            raise BertkitError(
                f"model.stride (--stride) must be below model.max_length ({model.max_length}), "
                f"got {model.stride}"
            )
        return self


def build_config(task_name: str, task_cls: type, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """Make a RunConfig from ``{section: {field: value}}``, checking names, types and choices."""
    classes = {**SECTIONS, task_name: task_cls}
    unknown = set(overrides) - set(classes) - {"task"}
    if unknown:
        raise BertkitError(f"unknown config section(s) {sorted(unknown)}; expected {sorted(classes)}")
    built = {}
    for name, cls in classes.items():
        values = dict(overrides.get(name) or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise BertkitError(f"unknown option {name}.{key}; known: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        built[name] = cls(**{k: coerce(v, hints[k], f"{name}.{k}", known[k]) for k, v in values.items()})
    return RunConfig(task_name, built.pop(task_name), **built).validate()


def load_yaml(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a run.yaml; nested ``{section: {field: value}}``."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise BertkitError(f"{path}: cannot read config: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for k, v in data.items() if k != "task"):
        raise BertkitError(f"{path}: a config is a mapping of sections to mappings of fields")
    return data


def merge(base: dict[str, dict[str, Any]], top: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {k: dict(v) for k, v in base.items() if isinstance(v, dict)}
    for section, values in top.items():
        if isinstance(values, dict):
            out.setdefault(section, {}).update(values)
    return out


def coerce(value: Any, hint: Any, name: str, fld: dataclasses.Field | None = None) -> Any:
    """Turn a YAML or command-line value into the field's type, or say what was expected."""
    optional = type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise BertkitError(f"{name} must not be empty")
    try:
        if typing.get_origin(base) is list:
            (item_type,) = typing.get_args(base)
            items = value.split(",") if isinstance(value, str) else list(value)
            value = [item_type(str(v).strip()) for v in items if str(v).strip()]
        elif base is bool:
            value = parse_bool(value)
        elif base in (int, float):
            # YAML gives bools and floats as such: `batch_size: 3.5` or `lr: true` are mistakes, not 3 or 1.0
            if isinstance(value, bool) or (
                base is int and isinstance(value, float) and not value.is_integer()
            ):
                raise ValueError
            value = base(value)
        elif base is str:
            value = str(value)
    except (TypeError, ValueError) as err:
        raise BertkitError(f"{name}: expected {getattr(base, '__name__', base)}, got {value!r}") from err
    choices = fld.metadata.get("choices") if fld is not None else None
    if choices and value not in choices:
        raise BertkitError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def check_bounds(section: str, obj: Any) -> None:
    """Raise for the first field of the dataclass ``obj`` whose value is outside its declared bounds."""
    for fld in dataclasses.fields(obj):
        bounds, value = fld.metadata.get("bounds"), getattr(obj, fld.name)
        if not bounds or value is None:
            continue
        if not all(BOUNDS[k][0](value, limit) for k, limit in bounds.items()):
            flags = "".join(f" ({f})" for f in fld.metadata.get("flags", ())[:1])
            raise BertkitError(f"{section}.{fld.name}{flags} must be {describe_bounds(bounds)}, got {value}")


def describe_bounds(bounds: dict[str, float]) -> str:
    """``{"ge": 0, "lt": 1}`` as ``in [0, 1)``; a single bound as ``> 0``."""
    low = next(((k, v) for k, v in bounds.items() if k in ("gt", "ge")), None)
    high = next(((k, v) for k, v in bounds.items() if k in ("lt", "le")), None)
    if low and high:
        return f"in {'(' if low[0] == 'gt' else '['}{low[1]}, {high[1]}{')' if high[0] == 'lt' else ']'}"
    return " and ".join(f"{BOUNDS[k][1]} {v}" for k, v in bounds.items())


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def add_config_arguments(parser: argparse.ArgumentParser, sections: dict[str, type]) -> None:
    """Add ``--section.field`` (and short) flags for every field; unset flags stay absent."""
    for section, cls in sections.items():
        group = parser.add_argument_group(f"{section} options")
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            flags = [f"--{section}.{fld.name}"]
            if "_" in fld.name:
                flags.append(f"--{section}.{fld.name.replace('_', '-')}")
            flags += list(fld.metadata.get("flags", ()))
            default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
            kwargs: dict[str, Any] = {"dest": f"{section}.{fld.name}", "default": argparse.SUPPRESS}
            if hints[fld.name] is bool:
                kwargs.update(nargs="?", const="true", metavar="BOOL")
            elif fld.metadata.get("nargs"):
                kwargs.update(nargs=fld.metadata["nargs"], metavar="PATH")
            else:
                kwargs["metavar"] = (
                    "|".join(fld.metadata["choices"])
                    if fld.metadata.get("choices")
                    else (fld.name.split("_")[-1].upper())
                )
            bounds = fld.metadata.get("bounds")
            limits = f", {describe_bounds(bounds)}" if bounds else ""
            kwargs["help"] = f"{fld.metadata.get('help', '')}{limits} (default: {default})"
            group.add_argument(*flags, **kwargs)


def resumed_run_yaml(cli: dict[str, dict[str, Any]]) -> Path | None:
    """``DIR/run.yaml`` of ``--resume DIR``, when there is one: the run's own config, so that
    ``--resume DIR`` alone continues it (flags still override it; the fingerprint check refuses a
    change to what the run was)."""
    resume = cli.get("train", {}).get("resume")
    run_yaml = Path(resume) / "run.yaml" if resume else None
    return run_yaml if run_yaml is not None and run_yaml.is_file() else None


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The ``{section: {field: value}}`` the user set on the command line."""
    out: dict[str, dict[str, Any]] = {}
    for dest, value in vars(args).items():
        if "." in dest:
            section, name = dest.split(".", 1)
            out.setdefault(section, {})[name] = value
    return out
