"""Tests for config.py: precedence defaults < YAML < CLI, flag spellings, coercion, round trip, --help."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

import bertkit.recipes.finetune
from bertkit.cli import app as cli
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
from bertkit.tasks.ner.task import NerConfig

ALL_SECTIONS = {**SECTIONS, "ner": NerConfig}


def config_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_config_arguments(parser, ALL_SECTIONS)
    return parser


def cli_overrides(*argv: str) -> dict:
    return overrides_from_args(config_parser().parse_args(list(argv)))


def from_cli(*argv: str, yaml_overrides: dict | None = None) -> RunConfig:
    """The config that YAML overrides plus these flags give, merged the way the CLI merges them."""
    return build_config("ner", NerConfig, merge(yaml_overrides or {}, cli_overrides(*argv)))


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- precedence ---------------------------------------------------------------------------------------


def test_unset_flags_are_absent_so_they_cannot_mask_yaml():
    assert cli_overrides() == {}
    assert cli_overrides("--lr", "1e-3") == {"train": {"lr": "1e-3"}}


def test_defaults_then_yaml_then_cli(tmp_path):
    path = write_yaml(
        tmp_path, "train:\n  lr: 1.0e-4\n  batch_size: 8\n  epochs: 5\nmodel:\n  max_length: 64\n"
    )
    cfg = from_cli("--lr", "3e-5", "--train.batch-size", "16", yaml_overrides=load_yaml(path))
    assert cfg.train.lr == 3e-5  # CLI over YAML
    assert cfg.train.batch_size == 16  # CLI over YAML
    assert cfg.train.epochs == 5.0 and isinstance(cfg.train.epochs, float)  # YAML over default, coerced
    assert cfg.model.max_length == 64  # YAML over default
    assert cfg.train.seed == 42 and cfg.model.stride == 32  # defaults where nobody said anything


def test_real_cli_merges_dataset_config_yaml_and_flags(tmp_path, monkeypatch):
    """defaults < a registered data set's own config < --config YAML < flags, through `bertkit finetune`."""
    captured: list[RunConfig] = []
    monkeypatch.setattr(bertkit.recipes.finetune, "finetune", captured.append)
    path = write_yaml(
        tmp_path,
        "task: ner\ndata:\n  dataset: weibo_ner\n  on_bad_line: error\ntrain:\n  lr: 1.0e-4\n  seed: 3\n",
    )

    def run(*argv: str) -> RunConfig:
        args = cli.build_parser().parse_args(["finetune", "ner", "--config", str(path), *argv])
        assert args.func(args) == 0
        return captured.pop()

    cfg = run("--seed", "9")
    assert cfg.train.seed == 9 and cfg.train.lr == 1e-4
    assert cfg.task.strip_position_suffix is True  # from weibo_ner's own config
    assert cfg.data.on_bad_line == "error"  # the YAML beats the data set's "warn"
    assert run("--ner.strip_position_suffix", "false").task.strip_position_suffix is False


def test_config_of_another_task_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(bertkit.recipes.finetune, "finetune", lambda cfg: None)
    path = write_yaml(tmp_path, "task: classify\n")
    args = cli.build_parser().parse_args(["finetune", "ner", "--config", str(path)])
    with pytest.raises(BertkitError, match="classify"):
        args.func(args)


# --- flag spellings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "section", "name", "value"),
    [
        (["--train.lr", "3e-5"], "train", "lr", 3e-5),
        (["--lr", "3e-5"], "train", "lr", 3e-5),
        (["--train.batch-size", "16"], "train", "batch_size", 16),
        (["--train.batch_size", "16"], "train", "batch_size", 16),
        (["--batch-size", "16"], "train", "batch_size", 16),
        (["--model.max-length", "48"], "model", "max_length", 48),
        (["--max-length", "48"], "model", "max_length", 48),
        (["--epochs", "2.5"], "train", "epochs", 2.5),
        (["--train.epochs", "2"], "train", "epochs", 2.0),
        (["--seed", "7"], "train", "seed", 7),
        (["--train", "train.conll"], "data", "train", "train.conll"),
        (["--out", "run1"], "output", "dir", "run1"),
        (["--model", "some/dir"], "model", "name_or_path", "some/dir"),
        (["--tag-scheme", "bioes"], "ner", "tag_scheme", "bioes"),
        (["--labels", "B-PER, I-PER,"], "ner", "labels", ["B-PER", "I-PER"]),
        (["--document-context"], "ner", "document_context", True),
        (["--output.plot", "false"], "output", "plot", False),
        (["--output.plot", "no"], "output", "plot", False),
        (["--model.dropout", "none"], "model", "dropout", None),
        (["--model.dropout", "0.25"], "model", "dropout", 0.25),
    ],
)
def test_flag_spellings(argv, section, name, value):
    cfg = from_cli(*argv)
    got = getattr(cfg.sections()[section], name)
    assert got == value and type(got) is type(value)
    default = build_config("ner", NerConfig, {})
    changed = [
        (s, f.name)
        for s, obj in cfg.sections().items()
        for f in dataclasses.fields(obj)
        if getattr(obj, f.name) != getattr(default.sections()[s], f.name)
    ]
    assert changed == ([(section, name)] if value != getattr(default.sections()[section], name) else [])


def test_train_file_flag_and_train_section_flags_do_not_collide():
    cfg = from_cli("--train", "data/train.conll", "--train.lr", "1e-3", "--train.batch-size", "4")
    assert cfg.data.train == "data/train.conll"
    assert cfg.train.lr == 1e-3 and cfg.train.batch_size == 4


def test_real_parser_has_no_abbreviations():
    parser = cli.build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["finetune", "ner", "--batch", "4"])
    assert info.value.code == 2


def test_unknown_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        config_parser().parse_args(["--train.lrr", "1"])
    assert info.value.code == 2
    assert "--train.lrr" in capsys.readouterr().err


# --- coercion, unknown names, choices -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "field_name"),
    [
        (["--train.lr", "fast"], "train.lr"),
        (["--batch-size", "3.5"], "train.batch_size"),
        (["--train.max_steps", "1e3"], "train.max_steps"),
        (["--output.plot", "maybe"], "output.plot"),
        (["--ner.tag_column", "last"], "ner.tag_column"),
    ],
)
def test_bad_cli_value_names_the_field(argv, field_name):
    with pytest.raises(BertkitError, match=re.escape(field_name)):
        from_cli(*argv)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"lr": None}}, "train.lr must not be empty"),
        ({"train": {"lrr": 1}}, "train.lrr"),
        ({"trian": {"lr": 1}}, "trian"),
        ({"ner": {"labelz": "B-X"}}, "ner.labelz"),
        ({"data": {"format": "csv"}}, "data.format"),
        ({"ner": {"decode": "beam"}}, "ner.decode"),
    ],
)
def test_bad_yaml_value_or_name_names_it(overrides, fragment):
    with pytest.raises(BertkitError, match=re.escape(fragment)):
        build_config("ner", NerConfig, overrides)


@pytest.mark.parametrize("value", [3.5, True])
def test_yaml_non_integer_for_int_field_is_refused(value):
    with pytest.raises(BertkitError, match="train.batch_size"):
        build_config("ner", NerConfig, {"train": {"batch_size": value}})


@pytest.mark.parametrize(
    ("argv", "field_name", "allowed"),
    [
        (["--precision", "fp16"], "train.precision", "auto, fp32, bf16"),
        (["--tag-scheme", "bilou"], "ner.tag_scheme", "bioes"),
        (["--data.format", "csv"], "data.format", "conll"),
        (["--on-bad-line", "skip"], "data.on_bad_line", "error, warn"),
    ],
)
def test_choices_are_enforced(argv, field_name, allowed):
    with pytest.raises(BertkitError) as info:
        from_cli(*argv)
    assert field_name in str(info.value) and allowed in str(info.value)


def test_choices_accept_every_allowed_value():
    for choice in ("auto", "fp32", "bf16"):
        assert from_cli("--precision", choice).train.precision == choice


@pytest.mark.parametrize("text", ["- a\n- b\n", "train: 3\n", "train: [unclosed\n"])
def test_load_yaml_rejects_what_is_not_a_config(tmp_path, text):
    path = write_yaml(tmp_path, text)
    with pytest.raises(BertkitError, match=re.escape(str(path))):
        load_yaml(path)


def test_load_yaml_missing_file(tmp_path):
    with pytest.raises(BertkitError, match="cannot read config"):
        load_yaml(tmp_path / "nope.yaml")


# --- round trip ---------------------------------------------------------------------------------------


def test_to_yaml_load_build_round_trips(tmp_path):
    overrides = {
        "data": {"train": "a b/train.conll", "dev": "dev.conll", "format": "conll", "dev_fraction": 0.25},
        "model": {"name_or_path": "m", "dropout": 0.2, "max_length": 48, "trust_remote_code": True},
        "train": {"lr": 3e-5, "epochs": 0.5, "precision": "bf16", "batch_size": 7, "seed": 11},
        "output": {"dir": "out", "plot": False},
        "ner": {"labels": ["B-PER", "I-PER"], "tag_scheme": "bioes", "decode": "argmax", "tag_column": -2},
    }
    cfg = build_config("ner", NerConfig, overrides)
    assert cfg != build_config("ner", NerConfig, {})
    path = write_yaml(tmp_path, cfg.to_yaml())
    assert build_config("ner", NerConfig, load_yaml(path)) == cfg


def test_default_config_round_trips(tmp_path):
    cfg = build_config("ner", NerConfig, {})
    path = write_yaml(tmp_path, cfg.to_yaml())
    assert load_yaml(path)["task"] == "ner"
    assert build_config("ner", NerConfig, load_yaml(path)) == cfg


# --- bertkit finetune ner --help ----------------------------------------------------------------------


def help_entries(text: str) -> dict[str, str]:
    """Option entries of an argparse help text, keyed by each of their flags, whitespace collapsed."""
    entries: list[tuple[list[str], str]] = []
    for line in text.splitlines():
        if line.startswith("  -"):
            flags_part = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
            entries.append((re.findall(r"--?[\w.-]+", flags_part), line))
        elif line.startswith("   ") and entries:
            flags, body = entries[-1]
            entries[-1] = (flags, body + " " + line)
    return {flag: " ".join(body.split()) for flags, body in entries for flag in flags}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_finetune_help_lists_every_field_with_its_default(task, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    with pytest.raises(SystemExit) as info:
        cli.main(["finetune", task, "--help"])
    assert info.value.code == 0
    entries = help_entries(capsys.readouterr().out)
    for section, cls in {**SECTIONS, task: TASKS[task].config_class}.items():
        for fld in dataclasses.fields(cls):
            flag = f"--{section}.{fld.name}"
            assert flag in entries, f"{flag} missing from --help"
            default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
            assert f"(default: {default})" in entries[flag], f"{flag}: {entries[flag]!r}"
            assert fld.metadata["help"].split()[0] in entries[flag]
            for short in fld.metadata.get("flags", ()):
                assert entries.get(short) == entries[flag], f"{short} should share the entry of {flag}"


# --- bounds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs (--epochs) must be > 0, got 0.0"),
        ({"train": {"epochs": -1}}, "train.epochs (--epochs) must be > 0, got -1.0"),
        ({"train": {"epochs": "nan"}}, "train.epochs (--epochs) must be > 0, got nan"),
        ({"train": {"batch_size": 0}}, "train.batch_size (--batch-size) must be >= 1, got 0"),
        ({"train": {"batch_size": -4}}, "train.batch_size (--batch-size) must be >= 1, got -4"),
        ({"train": {"grad_accum": 0}}, "train.grad_accum must be >= 1, got 0"),
        ({"train": {"lr": -1}}, "train.lr (--lr) must be >= 0, got -1.0"),
        ({"train": {"warmup_ratio": 1.5}}, "train.warmup_ratio must be in [0, 1], got 1.5"),
        ({"train": {"warmup_ratio": -0.1}}, "train.warmup_ratio must be in [0, 1], got -0.1"),
        ({"train": {"weight_decay": -0.01}}, "train.weight_decay must be >= 0, got -0.01"),
        ({"train": {"max_grad_norm": -1}}, "train.max_grad_norm must be >= 0, got -1.0"),
        ({"train": {"max_steps": -1}}, "train.max_steps (--steps) must be >= 0, got -1"),
        ({"train": {"eval_every": -1}}, "train.eval_every must be >= 0, got -1"),
        ({"train": {"save_every": -1}}, "train.save_every must be >= 0, got -1"),
        ({"train": {"patience": -2}}, "train.patience must be >= 0, got -2"),
        ({"train": {"log_every": 0}}, "train.log_every must be >= 1, got 0"),
        ({"train": {"threads": -1}}, "train.threads must be >= 0, got -1"),
        ({"data": {"dev_fraction": 0}}, "data.dev_fraction must be in (0, 1), got 0.0"),
        ({"data": {"dev_fraction": 1}}, "data.dev_fraction must be in (0, 1), got 1.0"),
        ({"model": {"dropout": 1}}, "model.dropout must be in [0, 1), got 1.0"),
        ({"model": {"dropout": -0.1}}, "model.dropout must be in [0, 1), got -0.1"),
        ({"model": {"max_length": 4}}, "model.max_length (--max-length) must be >= 8, got 4"),
        ({"model": {"stride": -1}}, "model.stride (--stride) must be >= 0, got -1"),
        ({"model": {"freeze_layers": -1}}, "model.freeze_layers must be >= 0, got -1"),
        (
            {"model": {"max_length": 16, "stride": 16}},
            "model.stride (--stride) must be below model.max_length (16), got 16",
        ),
    ],
)
def test_out_of_bounds_value_is_one_line_naming_field_and_bound(overrides, message):
    with pytest.raises(BertkitError) as info:
        build_config("ner", NerConfig, overrides)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "overrides",
    [
        {"train": {"lr": 0}},  # allowed: a run that must not move the weights
        {"train": {"warmup_ratio": 0, "max_grad_norm": 0, "weight_decay": 0, "threads": 0}},
        {"train": {"warmup_ratio": 1, "epochs": 0.01, "batch_size": 1, "log_every": 1}},
        {"model": {"dropout": 0.0, "max_length": 8, "stride": 7}},
        {"model": {"max_length": 16}},  # the default stride (32) shrinks to fit; only a chosen one must
        {"data": {"dev_fraction": 0.5}},
    ],
)
def test_values_on_the_bounds_are_accepted(overrides):
    build_config("ner", NerConfig, overrides)


def test_cli_flags_and_yaml_get_the_same_check(tmp_path):
    with pytest.raises(BertkitError, match=re.escape("train.epochs (--epochs) must be > 0, got 0.0")):
        from_cli("--epochs", "0")
    path = write_yaml(tmp_path, "train:\n  batch_size: 0\n")
    with pytest.raises(BertkitError, match=re.escape("train.batch_size (--batch-size) must be >= 1")):
        from_cli(yaml_overrides=load_yaml(path))


def test_validate_checks_a_config_built_in_python():
    cfg = build_config("ner", NerConfig, {})
    assert cfg.validate() is cfg
    cfg.train.grad_accum = 0
    with pytest.raises(BertkitError, match=re.escape("train.grad_accum must be >= 1, got 0")):
        cfg.validate()


def test_help_shows_the_bounds(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    with pytest.raises(SystemExit):
        cli.main(["finetune", "ner", "--help"])
    entries = help_entries(capsys.readouterr().out)
    assert "> 0 (default: 3.0)" in entries["--epochs"]
    assert "in [0, 1] (default: 0.1)" in entries["--train.warmup_ratio"]
    assert ">= 1 (default: 32)" in entries["--batch-size"]
