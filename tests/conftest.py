"""Shared fixtures: a tiny random BERT saved in the Hugging Face layout, and synthetic tagged data."""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

# The real data sets: where `make` points BERTKIT_DATA_DIR, else shared/ beside the checkout (tests
# that need them skip when neither exists).
SHARED_DATA = Path(
    os.environ.get("BERTKIT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank"]
CITIES = ["paris", "berlin", "tokyo", "lima", "oslo", "cairo"]
FILLER = ["the", "a", "went", "to", "saw", "met", "in", "and", "with", "today", "then", "home", "big", "old"]
SURNAME = "smith"
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *NAMES,
    *CITIES,
    *FILLER,
    SURNAME,
    ".",
    ",",
    *"abcdefghijklmnopqrstuvwxyz",
    *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
]


def synthetic_sentence(rng: random.Random, length: int) -> tuple[list[str], list[str]]:
    """Filler words with person names (optionally + 'smith') as PER and cities as LOC, IOB2."""
    tokens, tags = [], []
    while len(tokens) < length:
        roll = rng.random()
        if roll < 0.15:
            tokens.append(rng.choice(NAMES))
            tags.append("B-PER")
            if rng.random() < 0.5:
                tokens.append(SURNAME)
                tags.append("I-PER")
        elif roll < 0.27:
            tokens.append(rng.choice(CITIES))
            tags.append("B-LOC")
        else:
            tokens.append(rng.choice(FILLER))
            tags.append("O")
    return tokens, tags


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for tokens, tags in sentences:
            for token, tag in zip(tokens, tags):
                f.write(f"{token}\t{tag}\n")
            f.write("\n")
    return path


def sentence(rng: random.Random, names: int, cities: int, length: int = 6) -> str:
    """Filler words with ``names`` person names and ``cities`` city names inserted at random places."""
    words = [rng.choice(FILLER) for _ in range(length)]
    for w in [rng.choice(NAMES) for _ in range(names)] + [rng.choice(CITIES) for _ in range(cities)]:
        words.insert(rng.randrange(len(words) + 1), w)
    return " ".join(words)


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A TSV (by suffix) or CSV table with a header row."""
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_splits(
    folder: Path,
    make_row: Callable[[random.Random], list[str]],
    header: list[str],
    suffix: str = ".tsv",
    sizes: tuple[int, int, int] = (240, 60, 60),
) -> dict[str, Path]:
    """Seeded train/dev/test tables of ``make_row(rng)`` rows."""
    rng = random.Random(11)
    return {
        split: write_rows(folder / f"{split}{suffix}", header, [make_row(rng) for _ in range(n)])
        for split, n in zip(("train", "dev", "test"), sizes)
    }


def make_tiny_bert(
    out: Path,
    layers: int = 2,
    hidden: int = 32,
    max_positions: int = 128,
    vocab: list[str] = VOCAB,
    heads: int = 2,
    drawn_positions: int = 64,
) -> Path:
    """A random BERT and its WordPiece tokenizer of ``vocab``, saved in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    # transformers 5 takes the vocabulary itself; `vocab_file=` alone silently gives an all-[UNK] tokenizer
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(out)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=min(max_positions, drawn_positions),
    )
    torch.manual_seed(0)
    model = BertModel(config)
    if max_positions > drawn_positions:
        # 128 positions fit bertkit's default --max-length (checked against the model); the rows past 64
        # are drawn last, so every weight that seed-tuned tests were tuned on stays as it was with 64
        old = model.embeddings.position_embeddings.weight.detach()
        extra = torch.randn(max_positions - len(old), hidden) * config.initializer_range
        model.embeddings.position_embeddings = torch.nn.Embedding.from_pretrained(
            torch.cat([old, extra]), freeze=False
        )
        model.config.max_position_embeddings = max_positions
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-hidden random BERT with a WordPiece vocabulary of the synthetic words."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def synthetic_ner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train/dev/test CoNLL files of the synthetic PER/LOC pattern."""
    folder = tmp_path_factory.mktemp("synthetic_ner")
    rng = random.Random(7)
    sizes = {"train": 160, "dev": 40, "test": 40}
    return {
        split: write_conll(
            folder / f"{split}.conll", [synthetic_sentence(rng, rng.randint(3, 12)) for _ in range(n)]
        )
        for split, n in sizes.items()
    }


def bertkit_command(
    verb: str, task: str, model: Path, data: dict[str, Path], out: Path, *extra: str, test: bool = True
) -> list[str]:
    """`bertkit -q VERB TASK` on the splits in ``data`` (test too, unless ``test=False``); callers add
    the flags they need."""
    splits = ("train", "dev", "test") if test else ("train", "dev")
    files = [part for split in splits if split in data for part in (f"--{split}", str(data[split]))]
    return ["-q", verb, task, "--model", str(model), *files, "--out", str(out), *extra]


def ner_command(model: Path, data: dict[str, Path], out: Path, *extra: str, test: bool = True) -> list[str]:
    """`bertkit -q finetune ner` on the synthetic files; callers add the training flags they need."""
    return bertkit_command("finetune", "ner", model, data, out, *extra, test=test)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tensors in unit tests are tiny: on a busy 2-core machine handing them between threads costs far
    more than the work (use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def after_step(monkeypatch, step: int, action) -> None:
    """Run ``action`` (e.g. ``crash``) right after the loop reports step ``step``."""
    from bertkit.training import loop

    real_report = loop.report_step

    def report(bar, train_log, state, *rest):
        real_report(bar, train_log, state, *rest)
        if state.step == step:
            action()

    monkeypatch.setattr(loop, "report_step", report)


def crash() -> None:
    raise KeyboardInterrupt
