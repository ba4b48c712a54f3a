"""Pretraining instances as token offsets into a ``TokenStore``: MLM+NSP sentence pairs or MLM blocks.

``mlm+nsp`` reproduces ``create_instances_from_document`` of Google's create_pretraining_data.py;
``mlm`` packs whole sentences of one document (RoBERTa's DOC-SENTENCES). An instance is five int64s
(``a_start, a_end, b_start, b_end, label``), so millions of them cost little and load memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import BertkitError
from bertkit.pretrain.store import TokenStore, atomic_folder, check_replaceable, recover_aside

log = logging.getLogger(__name__)

OBJECTIVES = ("mlm+nsp", "mlm")
IS_NEXT, RANDOM_NEXT, NO_NSP = 0, 1, -100  # Hugging Face's next_sentence_label; -100 is ignored
FORMAT = 1
META_FILE = "instances.json"
ROWS_FILE = "instances.npy"
MIN_PAIRS_TO_WARN = 200
LOW_NEXT_SHARE = 0.3  # below this share of label 0, NSP learns little: warn
HIGH_TRUNCATION = 0.25  # Google's recipe cuts ~8% of tokens on ordinary text; far more means unsplit text


@dataclass
class PretrainFeature:
    input_ids: list[int]  # [CLS] A [SEP] B [SEP], or [CLS] tokens [SEP] for mlm
    token_type_ids: list[int]  # 0 for [CLS] A [SEP], 1 for B [SEP]
    word_starts: list[int]  # 1 where a word starts; every special token is 1
    next_sentence_label: int  # 0: B follows A; 1: B comes from another document; -100: mlm


@dataclass(frozen=True)
class SpecialIds:
    cls: int
    sep: int


@dataclass
class BuildStats:
    """What a build did, logged and saved with the instances."""

    instances: int = 0
    is_next: int = 0
    random_next: int = 0
    targets: int = 0  # target lengths drawn: one per document and pass, as Google draws them
    short_targets: int = 0
    pair_tokens: int = 0  # tokens of A and B before truncation
    truncated_tokens: int = 0


class Instances:
    """A ``FeatureSource`` for the training loop: features built on the fly from offsets and the store."""

    def __init__(
        self,
        store: TokenStore,
        rows: np.ndarray,
        objective: str,
        special: SpecialIds,
        fingerprint: str,
        stats: BuildStats,
    ):
        self.store, self.rows, self.objective, self.special = store, rows, objective, special
        self.fingerprint, self.stats = fingerprint, stats
        specials = 3 if objective == "mlm+nsp" else 2
        self._lengths = (rows[:, 1] - rows[:, 0] + rows[:, 3] - rows[:, 2] + specials).astype(np.int64)

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> PretrainFeature:
        if not -len(self) <= index < len(self):
            raise IndexError(f"instance {index} of {len(self)}")
        a_start, a_end, b_start, b_end, label = self.rows[index].tolist()
        cls, sep = self.special.cls, self.special.sep
        tokens, starts = self.store.tokens, self.store.word_starts
        ids = [cls, *tokens[a_start:a_end].tolist(), sep]
        word_starts = [1, *starts[a_start:a_end].tolist(), 1]
        types = [0] * len(ids)
        if self.objective == "mlm+nsp":
            ids += [*tokens[b_start:b_end].tolist(), sep]
            word_starts += [*starts[b_start:b_end].tolist(), 1]
            types += [1] * (b_end - b_start + 1)
        return PretrainFeature(ids, types, word_starts, label)


def build_instances(
    store: TokenStore,
    documents: Sequence[int] | np.ndarray,
    *,
    objective: str,
    max_length: int,
    special: SpecialIds,
    short_seq_prob: float = 0.1,
    duplicates: int = 1,
    seed: int = 0,
    folder: Path | None = None,
) -> Instances:
    """Instances from ``documents`` (document numbers of ``store``), ``duplicates`` passes over them.

    Deterministic from ``seed``. With ``folder``, the offsets are saved there and reused by a later
    call with the same fingerprint (the store's and every argument).
    """
    documents = checked_documents(store, documents)
    check_arguments(objective, max_length, short_seq_prob, duplicates, len(documents))
    settings = {
        "objective": objective,
        "max_length": max_length,
        "special": asdict(special),
        "short_seq_prob": short_seq_prob,
        "duplicates": duplicates,
        "seed": seed,
    }
    fingerprint = instances_fingerprint(store.fingerprint, documents, settings)
    saved = load_saved(Path(folder), fingerprint) if folder is not None else None
    if saved is not None:
        rows, stats = saved
    else:
        began = time.perf_counter()
        rows, stats = make_rows(store, documents, objective, max_length, short_seq_prob, duplicates, seed)
        log.info("made %d instances in %.1f s", len(rows), time.perf_counter() - began)
        if folder is not None:
            rows = save_rows(Path(folder), rows, fingerprint, stats, settings)
    report(store, documents, objective, stats)
    return Instances(store, rows, objective, special, fingerprint, stats)


def checked_documents(store: TokenStore, documents: Sequence[int] | np.ndarray) -> np.ndarray:
    documents = np.asarray(documents)
    if documents.ndim != 1 or not len(documents) or not np.issubdtype(documents.dtype, np.integer):
        raise BertkitError(
            f"expected a non-empty list of document numbers to make instances from, got {documents!r:.60}"
        )
    documents = documents.astype(np.int64)
    if documents.min() < 0 or documents.max() >= store.n_documents:
        bad = documents.min() if documents.min() < 0 else documents.max()
        raise BertkitError(f"document {bad} is not in the token store (it has {store.n_documents})")
    if len(np.unique(documents)) != len(documents):
        raise BertkitError(
            "the documents repeat a document number: give each once, and `duplicates` for passes"
        )
    return documents


def check_arguments(objective: str, max_length: int, short_seq_prob: float, duplicates: int, n: int) -> None:
    if objective not in OBJECTIVES:
        raise BertkitError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    least = 5 if objective == "mlm+nsp" else 3  # room for the special tokens and a token per segment
    if max_length < least:
        raise BertkitError(
            f"max_length {max_length} leaves no room for {objective} instances (need >= {least})"
        )
    if not 0 <= short_seq_prob <= 1:
        raise BertkitError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    if duplicates < 1:
        raise BertkitError(f"duplicates must be at least 1, got {duplicates}")
    if objective == "mlm+nsp" and n < 2:
        raise BertkitError(
            f"mlm+nsp needs at least 2 documents, got {n}: a random-next pair takes its B from another "
            "document (a held-out split of one document?). Use --objective mlm, or give more documents"
        )


def instances_fingerprint(store_fingerprint: str, documents: np.ndarray, settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "store": store_fingerprint, **settings}).encode())
    digest.update(documents.astype("<i8").tobytes())
    return f"sha256:{digest.hexdigest()}"


def make_rows(
    store: TokenStore,
    documents: np.ndarray,
    objective: str,
    max_length: int,
    short_seq_prob: float,
    duplicates: int,
    seed: int,
) -> tuple[np.ndarray, BuildStats]:
    if objective == "mlm":
        blocks = array("q")
        for document in documents.tolist():
            for start, end in pack_document(store, document, max_length - 2):
                blocks.extend((start, end, end, end, NO_NSP))
        rows = np.tile(np.frombuffer(blocks, dtype=np.int64).reshape(-1, 5), (duplicates, 1))
        return rows, BuildStats(instances=len(rows))
    maker = PairMaker(store, documents, max_length - 3, short_seq_prob, np.random.default_rng(seed))
    for _ in range(duplicates):
        for position in range(len(documents)):
            maker.document(position)
    rows = np.frombuffer(maker.rows, dtype=np.int64).reshape(-1, 5)
    maker.stats.instances = len(rows)
    return rows, maker.stats


def pack_document(store: TokenStore, document: int, block: int) -> Iterator[tuple[int, int]]:
    """Token spans of at most ``block`` tokens, each of whole consecutive sentences of ``document``.

    A sentence longer than ``block`` is cut into pieces of ``block`` tokens; its last piece opens the
    next span, so no token is dropped and no span crosses the document's end.
    """
    sentences = store.sentences_of(document)
    start = store.sentence_span(sentences.start)[0]
    previous = start  # end of the last sentence taken into the open span
    for end in store.sentence_ends[sentences.start : sentences.stop].tolist():
        if end - start > block:
            if previous > start:
                yield start, previous
                start = previous
            while end - start > block:
                yield start, start + block
                start += block
        previous = end
    yield start, previous


class Draws:
    """Uniform numbers from a numpy Generator, drawn in blocks: one Generator call per number would
    cost more than the rest of the loop."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16):
        self.rng, self.block = rng, block
        self.buffer: list[float] = []
        self.next = 0

    def uniform(self) -> float:
        if self.next == len(self.buffer):
            self.buffer, self.next = self.rng.random(self.block).tolist(), 0
        self.next += 1
        return self.buffer[self.next - 1]

    def integer(self, low: int, high: int) -> int:
        """Uniform in ``[low, high]``, both included (as Python's ``random.randint``)."""
        return min(low + int(self.uniform() * (high - low + 1)), high)


class PairMaker:
    """Google's ``create_instances_from_document`` over token offsets, one document at a time."""

    def __init__(
        self,
        store: TokenStore,
        documents: np.ndarray,
        max_tokens: int,
        short_seq_prob: float,
        rng: np.random.Generator,
    ):
        self.documents, self.max_tokens, self.short_seq_prob = documents, max_tokens, short_seq_prob
        self.rng, self.draws = rng, Draws(rng)
        self.sentence_ends = np.asarray(store.sentence_ends)
        ends = np.asarray(store.document_ends)[documents]
        self.first_sentence = np.where(documents > 0, np.asarray(store.document_ends)[documents - 1], 0)
        self.last_sentence = ends - 1
        self.rows = array("q")
        self.stats = BuildStats()

    def token_start(self, sentence: int) -> int:
        return int(self.sentence_ends[sentence - 1]) if sentence else 0

    def target_length(self) -> int:
        """Usually the longest pair; sometimes (``short_seq_prob``) a shorter one, like fine-tuning's."""
        self.stats.targets += 1
        if self.draws.uniform() < self.short_seq_prob:
            self.stats.short_targets += 1
            return self.draws.integer(2, self.max_tokens)
        return self.max_tokens

    def document(self, position: int) -> None:
        """Chunks of consecutive sentences up to the target length, each split into A and B."""
        first, last = int(self.first_sentence[position]), int(self.last_sentence[position])
        starts = [self.token_start(first), *self.sentence_ends[first:last].tolist()]
        ends = self.sentence_ends[first : last + 1].tolist()
        target = self.target_length()
        chunk, i = 0, 0  # the chunk is sentences chunk..i of the document
        while i < len(ends):
            if i == len(ends) - 1 or ends[i] - starts[chunk] >= target:
                size = i - chunk + 1
                a_count = 1 if size == 1 else self.draws.integer(1, size - 1)
                a_start, a_end = starts[chunk], ends[chunk + a_count - 1]
                if size == 1 or self.draws.uniform() < 0.5:
                    b_start, b_end = self.random_segment(position, target - (a_end - a_start))
                    self.add(a_start, a_end, b_start, b_end, RANDOM_NEXT)
                    i = chunk + a_count - 1  # the sentences B did not use go back for the next chunk
                else:
                    self.add(a_start, a_end, a_end, ends[i], IS_NEXT)
                chunk = i + 1
            i += 1

    def random_segment(self, position: int, target: int) -> tuple[int, int]:
        """Consecutive sentences of another document, from a random one until ``target`` tokens."""
        other = self.draws.integer(0, len(self.documents) - 2)
        other += other >= position  # never the current document (Google's 10 tries can still hit it)
        first, last = int(self.first_sentence[other]), int(self.last_sentence[other])
        sentence = self.draws.integer(first, last)
        start = self.token_start(sentence)
        # the first sentence whose end reaches the target; at least the first one, at most the last
        end_sentence = int(np.searchsorted(self.sentence_ends, start + target, side="left"))
        return start, int(self.sentence_ends[min(max(end_sentence, sentence), last)])

    def add(self, a_start: int, a_end: int, b_start: int, b_end: int, label: int) -> None:
        """Record a pair after truncating it to ``max_tokens``, cutting the longer side at either end."""
        length_a, length_b = a_end - a_start, b_end - b_start
        self.stats.pair_tokens += length_a + length_b
        excess = length_a + length_b - self.max_tokens
        if excess > 0:
            cut_a, cut_b = truncation_cuts(length_a, length_b, excess)
            # each cut token leaves the front or the back with even odds, as in Google's truncate_seq_pair
            front_a, front_b = (int(self.rng.binomial(cut, 0.5)) if cut else 0 for cut in (cut_a, cut_b))
            a_start, a_end = a_start + front_a, a_end - (cut_a - front_a)
            b_start, b_end = b_start + front_b, b_end - (cut_b - front_b)
            self.stats.truncated_tokens += excess
        self.rows.extend((a_start, a_end, b_start, b_end, label))
        if label == IS_NEXT:
            self.stats.is_next += 1
        else:
            self.stats.random_next += 1


def truncation_cuts(length_a: int, length_b: int, excess: int) -> tuple[int, int]:
    """Tokens cut from A and from B by removing one at a time from the longer side (A on a tie)."""
    gap = abs(length_a - length_b)
    if excess <= gap:
        return (excess, 0) if length_a > length_b else (0, excess)
    rest = excess - gap  # once level, the cuts alternate, A first
    return (gap if length_a > length_b else 0) + (rest + 1) // 2, (
        gap if length_b > length_a else 0
    ) + rest // 2


def load_saved(folder: Path, fingerprint: str) -> tuple[np.ndarray, BuildStats] | None:
    """The offsets saved in ``folder`` for ``fingerprint``, memory-mapped; None (logged why) otherwise."""
    recover_aside(folder)
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return None
    check_replaceable(folder, (META_FILE, ROWS_FILE), "instances")
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("fingerprint") != fingerprint:
            log.info("%s holds instances for other settings or another store: rebuilding them", folder)
            return None
        rows = np.load(folder / ROWS_FILE, mmap_mode="r")
        stats = BuildStats(**{f.name: int(meta["stats"][f.name]) for f in fields(BuildStats)})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("the instances in %s are damaged (%s): rebuilding them", folder, err)
        return None
    if rows.dtype != np.int64 or rows.shape != (stats.instances, 5):
        log.warning(
            "%s: %s holds %s %s, expected (%d, 5) int64: rebuilding",
            folder,
            ROWS_FILE,
            rows.shape,
            rows.dtype,
            stats.instances,
        )
        return None
    log.info("reusing %d instances from %s", len(rows), folder)
    return rows, stats


def save_rows(
    folder: Path, rows: np.ndarray, fingerprint: str, stats: BuildStats, settings: dict[str, Any]
) -> np.ndarray:
    """Write the offsets atomically and return them memory-mapped from the file."""
    with atomic_folder(folder) as scratch:
        np.save(scratch / ROWS_FILE, rows)
        meta = {"format": FORMAT, "fingerprint": fingerprint, **settings, "stats": asdict(stats)}
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return np.load(folder / ROWS_FILE, mmap_mode="r")


def report(store: TokenStore, documents: np.ndarray, objective: str, stats: BuildStats) -> None:
    """Log what the instances hold, and warn where they cannot teach what the objective asks."""
    if objective == "mlm":
        log.info("%d mlm blocks of whole sentences from %d documents", stats.instances, len(documents))
        return
    next_share = stats.is_next / max(stats.instances, 1)
    cut_share = stats.truncated_tokens / max(stats.pair_tokens, 1)
    log.info(
        "%d mlm+nsp pairs from %d documents: %.1f%% with B the real next sentences (label 0); "
        "%.1f%% of target lengths short; %d of %d tokens (%.2f%%) cut by truncation to max_length",
        stats.instances,
        len(documents),
        100 * next_share,
        100 * stats.short_targets / max(stats.targets, 1),
        stats.truncated_tokens,
        stats.pair_tokens,
        100 * cut_share,
    )
    # a handful of pairs (a small held-out split) is too few to tell a skewed share from chance
    if next_share < LOW_NEXT_SHARE and stats.instances >= MIN_PAIRS_TO_WARN:
        ends = np.asarray(store.document_ends)
        counts = ends[documents] - np.where(documents > 0, ends[documents - 1], 0)
        log.warning(
            "only %.1f%% of the NSP pairs are real continuations (label 0), expected about 50%%: %.1f%% of "
            "the documents have one sentence, which can only pair with a random B. Is there a blank line "
            "after every sentence (a blank line ends a document)? Otherwise use --objective mlm",
            100 * next_share,
            100 * float(np.mean(counts == 1)),
        )
    if cut_share > HIGH_TRUNCATION:
        log.warning(
            "truncation to max_length cut %.1f%% of the tokens of the pairs: sentences are long for "
            "max_length (is the text split into sentences?); a larger max_length keeps more of them",
            100 * cut_share,
        )


def split_documents(n_documents: int, heldout: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train and held-out document numbers (each sorted): a share (a float in (0, 1)) or a count.

    Whole documents are held out, so no held-out sentence has a training neighbour; both sides get at
    least one document.
    """
    count = heldout_count(n_documents, heldout)
    order = np.random.default_rng(seed).permutation(n_documents)
    return np.sort(order[count:]), np.sort(order[:count])


def heldout_count(n_documents: int, heldout: float | int) -> int:
    if n_documents < 2:
        raise BertkitError(
            f"cannot hold out documents from a corpus of {n_documents} document(s): need at least 2, "
            "one to train on and one to evaluate"
        )
    if isinstance(heldout, (bool, np.bool_)) or not isinstance(
        heldout, (int, float, np.integer, np.floating)
    ):
        raise BertkitError(f"heldout must be a share in (0, 1) or a count of documents, got {heldout!r}")
    if isinstance(heldout, (float, np.floating)):
        if not 0 < heldout < 1:
            raise BertkitError(
                f"heldout {heldout} as a share of the documents must be in (0, 1); give a whole number "
                "for a count of documents"
            )
        return min(n_documents - 1, max(1, round(heldout * n_documents)))
    if not 1 <= heldout <= n_documents - 1:
        raise BertkitError(
            f"heldout {heldout} documents of {n_documents}: must be 1 to {n_documents - 1}, so that both "
            "the training and the held-out side have documents"
        )
    return int(heldout)
