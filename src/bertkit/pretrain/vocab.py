"""Train a BERT WordPiece vocabulary from a stream of texts and save it in the Hugging Face layout.

The corpus is streamed once: characters are counted as ``tokenizers`` trains on it, and the vocabulary
then keeps every character seen ``min_frequency`` times (thousands, for Chinese), not a top 1000.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import BertTokenizerFast

from bertkit.atomic import UMASK, atomic_dir_files
from bertkit.data.readers.text import is_cjk
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order
PREFIX = "##"
UNK_SAMPLE_LINES = 10_000
SIZE_TOLERANCE = 0.01  # a vocabulary this far from the requested size is logged as a warning


@dataclass
class VocabConfig:
    """How to train a vocabulary.

    ``limit_alphabet=None`` keeps every character seen at least ``min_frequency`` times: tokenizers'
    own limit is a top-N by frequency whose usual default (1000, in ``BertWordPieceTokenizer``) turns
    most Chinese characters into [UNK], and no fixed N suits every script. An int keeps at most that
    many characters, the most frequent ones. ``chinese_chars`` exempts CJK ideographs from that limit:
    Chinese is cut into single characters, so a character left out is an [UNK] wherever it occurs.

    BERT's normaliser always makes each CJK ideograph a word of its own, so no ``##`` form of one is
    ever trained or added (Google's Chinese vocabulary has them): the tokenizer could never produce
    them, and whole-word masking here reads word starts, not ``##`` marks.
    """

    vocab_size: int = 30522
    lowercase: bool = False
    chinese_chars: bool = False
    min_frequency: int = 2
    limit_alphabet: int | None = None

    def __post_init__(self) -> None:
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise BertkitError(
                f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {self.vocab_size}"
            )
        if self.min_frequency < 0:
            raise BertkitError(f"min_frequency must be >= 0, got {self.min_frequency}")
        if self.limit_alphabet is not None and self.limit_alphabet < 0:
            raise BertkitError(f"limit_alphabet must be >= 0 or None, got {self.limit_alphabet}")


@dataclass
class VocabReport:
    """What was written: its size against the request, characters kept, [UNK] share of a corpus sample."""

    vocab_size: int
    requested_size: int
    alphabet_size: int
    unk_rate: float


@dataclass
class _CorpusTap:
    """Passes texts through to the trainer, counting characters and keeping a sample of texts."""

    normalizer: normalizers.Normalizer
    raw_chars: Counter = field(default_factory=Counter)
    lines: int = 0
    sample: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def stream(self, texts: Iterable[str]) -> Iterator[str]:
        for text in texts:
            if not isinstance(text, str):
                raise BertkitError(
                    f"texts must yield str, got {type(text).__name__} at item {self.lines + 1}"
                )
            self.raw_chars.update(text)
            # Reservoir sampling: a uniform sample of the whole stream, not just its beginning
            if len(self.sample) < UNK_SAMPLE_LINES:
                self.sample.append(text)
            elif (slot := self.rng.randrange(self.lines + 1)) < UNK_SAMPLE_LINES:
                self.sample[slot] = text
            self.lines += 1
            yield text

    def chars(self) -> Counter:
        """How often each normalised character was seen.

        Each step of BertNormalizer (cleaning, spacing CJK, NFD and accent stripping, lowercasing) maps
        one character at a time, so normalising each distinct raw character gives the same counts as
        normalising every text, at a third of the cost.
        """
        chars: Counter = Counter()
        for raw, n in self.raw_chars.items():
            for char in self.normalizer.normalize_str(raw):
                chars[char] += n
        return chars


def _bert_wordpiece(cfg: VocabConfig) -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=PREFIX))
    # Accents are stripped exactly when lowercasing, as in Google's uncased and cased models
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=cfg.lowercase, lowercase=cfg.lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix=PREFIX)
    return tokenizer


def _alphabet(chars: Counter, cfg: VocabConfig) -> set[str]:
    """The characters the vocabulary keeps: seen ``min_frequency`` times, within ``limit_alphabet``;
    with ``chinese_chars`` every CJK ideograph seen at all, outside both limits."""
    exempt = {c for c in chars if cfg.chinese_chars and is_cjk(c)}
    seen = [c for c, n in chars.items() if (n >= cfg.min_frequency or c in exempt) and not c.isspace()]
    if cfg.limit_alphabet is None:
        return set(seen)
    others = sorted((c for c in seen if c not in exempt), key=lambda c: (-chars[c], c))
    return exempt | set(others[: cfg.limit_alphabet])


def _restrict_to_alphabet(tokenizer: Tokenizer, alphabet: set[str]) -> int:
    """Drop every token using a character outside ``alphabet``; return the number of characters kept.

    The trainer runs with no alphabet limit (the counts it would need only exist once the stream has
    been read), so the limit is applied here. Ids are renumbered densely in a fixed order (specials at
    0..4, then characters, their ``##`` forms, and longer pieces, each by length and then text): the
    trainer's own order of equal-count pieces changes from run to run, and with it every id.
    """
    kept = [
        token
        for token in tokenizer.get_vocab()
        if token not in SPECIAL_TOKENS and set(token.removeprefix(PREFIX) or token) <= alphabet
    ]
    kept.sort(
        key=lambda token: (len(token.removeprefix(PREFIX)) > 1, token.startswith(PREFIX), len(token), token)
    )
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *kept])}
    tokenizer.model = models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=PREFIX)
    return sum(1 for token in kept if len(token) == 1)


def _unk_rate(tokenizer: Tokenizer, sample: list[str]) -> float:
    encodings = tokenizer.encode_batch(sample, add_special_tokens=False)
    unk_id = tokenizer.token_to_id("[UNK]")
    total = sum(len(e.ids) for e in encodings)
    return sum(e.ids.count(unk_id) for e in encodings) / total if total else 0.0


def _save(tokenizer: BertTokenizerFast, out_dir: Path) -> None:
    """Write the tokenizer files so that a crash never leaves a half-written vocabulary under ``out_dir``.

    A new (or empty) ``out_dir`` is written whole as a sibling folder and renamed into place; a folder
    that already holds other files cannot be swapped whole, so each file is renamed in on its own.
    """
    if out_dir.is_dir() and any(out_dir.iterdir()):
        with atomic_dir_files(out_dir) as scratch:
            _write_files(tokenizer, scratch)
        return
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        os.chmod(scratch, 0o777 & ~UMASK)  # mkdtemp makes 0700; the saved folder should follow the umask
        _write_files(tokenizer, scratch)
        os.replace(scratch, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_files(tokenizer: BertTokenizerFast, folder: Path) -> None:
    tokenizer.save_pretrained(folder)
    # transformers 5 writes no vocab.txt; Google's BERT code and older tools need it
    tokens = sorted(tokenizer.backend_tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in tokens), encoding="utf-8")


def train_vocab(texts: Iterable[str], out_dir: str | Path, cfg: VocabConfig) -> VocabReport:
    """Train a cased or uncased BERT WordPiece vocabulary on ``texts`` (read once) and save it to ``out_dir``.

    ``out_dir`` gets tokenizer.json, tokenizer_config.json and vocab.txt, loadable with
    ``AutoTokenizer.from_pretrained``. The [UNK] rate is measured on a sample of the training texts.
    """
    tokenizer = _bert_wordpiece(cfg)
    tap = _CorpusTap(tokenizer.normalizer)
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        show_progress=False,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix=PREFIX,
    )
    tokenizer.train_from_iterator(tap.stream(texts), trainer)
    chars = tap.chars()
    if not any(not c.isspace() for c in chars):
        raise BertkitError(
            f"cannot train a vocabulary: the corpus has no text ({tap.lines} line(s), all blank)"
        )
    alphabet_size = _restrict_to_alphabet(tokenizer, _alphabet(chars, cfg))
    if alphabet_size == 0:
        raise BertkitError(
            f"cannot train a vocabulary: no character is seen min_frequency={cfg.min_frequency} times "
            f"in the {tap.lines} line(s) of the corpus"
        )
    hf_tokenizer = BertTokenizerFast(
        tokenizer_object=tokenizer,
        do_lower_case=cfg.lowercase,
        strip_accents=cfg.lowercase,
        tokenize_chinese_chars=True,
    )
    report = VocabReport(
        vocab_size=len(hf_tokenizer),
        requested_size=cfg.vocab_size,
        alphabet_size=alphabet_size,
        unk_rate=_unk_rate(hf_tokenizer.backend_tokenizer, tap.sample),
    )
    _warn_about_size(report)
    _save(hf_tokenizer, Path(out_dir))
    return report


def _warn_about_size(report: VocabReport) -> None:
    if abs(report.vocab_size - report.requested_size) <= SIZE_TOLERANCE * report.requested_size:
        return
    why = (
        f"the alphabet ({report.alphabet_size} characters) and its {PREFIX} forms come first"
        if report.vocab_size > report.requested_size
        else "the corpus has too few pairs seen min_frequency times to merge, or rare characters were dropped"
    )
    log.warning(
        "vocabulary has %d tokens, not the %d asked for: %s", report.vocab_size, report.requested_size, why
    )
