"""The tokenised corpus on disk: flat memory-mapped arrays, written once by streaming and reused.

A build appends documents chunk by chunk to binary files in a scratch folder beside the store (the corpus
is never held in memory), hashing them as it goes, then fsyncs and renames the folder into place: a kill
leaves the previous store or none. Every open checks sizes and counts; ``verify_store`` re-hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bertkit.atomic import recover_aside as atomic_recover_aside
from bertkit.atomic import swap_folder
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)

FORMAT = 1
META_FILE = "meta.json"
ARRAYS = ("tokens", "word_starts", "sentence_ends", "document_ends")
FLUSH_SENTENCES = 50_000  # sentences buffered between writes: bounds the memory of a build
HASH_BLOCK = 1 << 24  # bytes read at a time when re-hashing or widening
BUILDING = ".building"  # suffix of scratch folders; a killed build leaves one behind
OWNER_FILE = "OWNER"  # host and pid of the build writing a scratch folder

Document = Iterable[tuple[list[int], list[bool]]]


class CorruptStore(BertkitError):
    """A store whose files do not match its meta: names the file and what is wrong with it."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


@dataclass
class TokenStore:
    """The corpus as four memory-mapped arrays; every sentence and document holds at least one token."""

    folder: Path
    fingerprint: str
    n_documents: int
    n_sentences: int
    n_tokens: int
    tokens: np.ndarray  # uint16 when every id fits (BERT's and RoBERTa's vocabularies do), else int32
    word_starts: np.ndarray  # uint8, 1 on the first sub-word of a word
    sentence_ends: np.ndarray  # int64, cumulative token end of each sentence
    document_ends: np.ndarray  # int64, cumulative sentence end of each document

    def sentences_of(self, document: int) -> range:
        """The sentence numbers of ``document``."""
        if not 0 <= document < self.n_documents:
            raise IndexError(f"document {document} of {self.n_documents}")
        start = int(self.document_ends[document - 1]) if document else 0
        return range(start, int(self.document_ends[document]))

    def sentence_span(self, sentence: int) -> tuple[int, int]:
        """Token offsets ``[start, end)`` of ``sentence``."""
        if not 0 <= sentence < self.n_sentences:
            raise IndexError(f"sentence {sentence} of {self.n_sentences}")
        start = int(self.sentence_ends[sentence - 1]) if sentence else 0
        return start, int(self.sentence_ends[sentence])

    def document_span(self, document: int) -> tuple[int, int]:
        """Token offsets ``[start, end)`` of ``document`` (its sentences are contiguous)."""
        sentences = self.sentences_of(document)
        return self.sentence_span(sentences.start)[0], self.sentence_span(sentences.stop - 1)[1]

    def document_of_token(self, offset: int | np.ndarray) -> int | np.ndarray:
        """The document holding token ``offset`` (or each of an array of offsets)."""
        sentence = np.searchsorted(self.sentence_ends, offset, side="right")
        document = np.searchsorted(self.document_ends, sentence, side="right")
        return int(document) if np.ndim(document) == 0 else document


def open_or_build_store(
    folder: str | Path,
    fingerprint: str,
    documents: Callable[[], Iterable[Document]],
    progress: bool = True,
    verify: bool = False,
) -> TokenStore:
    """Reuse the store in ``folder`` if it is complete and made for ``fingerprint``; else build it.

    ``documents()`` is called only for a build: each document is a list of sentences, each sentence
    ``(token_ids, word_starts)``. Sizes and counts are checked on every open; ``verify`` also re-hashes
    every array against the digests taken while writing (it reads the whole corpus, so it is opt-in).
    """
    folder = Path(folder)
    store = existing_store(folder, fingerprint, verify)
    if store is not None:
        log.info("reusing the token store in %s (fingerprint %s)", folder, fingerprint)
        return store
    return build_store(folder, fingerprint, documents(), progress)


def existing_store(folder: Path, fingerprint: str, verify: bool) -> TokenStore | None:
    """The store in ``folder`` if it can be reused, else None after logging why it cannot."""
    recover_aside(folder)
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        log.info("no token store in %s yet: building it", folder)
        return None
    check_replaceable(folder, (META_FILE, *(f"{name}.bin" for name in ARRAYS)), "token store")
    try:
        meta = read_meta(folder)
        if meta["fingerprint"] != fingerprint:
            log.info(
                "%s holds a token store for %s, not %s: rebuilding it",
                folder,
                meta["fingerprint"],
                fingerprint,
            )
            return None
        store = open_store(folder, meta)
        if verify:
            verify_store(folder)
    except CorruptStore as err:
        log.warning("the token store in %s is damaged (%s): rebuilding it", folder, err)
        return None
    return store


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptStore(path, "missing") from None
    except (OSError, ValueError) as err:
        raise CorruptStore(path, f"unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CorruptStore(path, f"not a token store of format {FORMAT}")
    missing = [key for key in ("fingerprint", "n_documents", "n_sentences", "n_tokens") if key not in meta]
    arrays = meta.get("arrays") if isinstance(meta.get("arrays"), dict) else {}
    missing += [
        f"{name} array"
        for name in ARRAYS
        if not isinstance(arrays.get(name), dict) or not {"dtype", "length", "sha256"} <= arrays[name].keys()
    ]
    if missing:
        raise CorruptStore(path, f"lacks {', '.join(missing)}")
    return meta


def open_store(folder: str | Path, meta: dict[str, Any] | None = None) -> TokenStore:
    """Open the store in ``folder`` after the cheap checks: files, byte sizes, counts, last offsets."""
    folder = Path(folder)
    meta = meta or read_meta(folder)
    expected = {
        "tokens": meta["n_tokens"],
        "word_starts": meta["n_tokens"],
        "sentence_ends": meta["n_sentences"],
        "document_ends": meta["n_documents"],
    }
    arrays = {name: map_array(folder, name, meta["arrays"][name], expected[name]) for name in ARRAYS}
    if int(arrays["sentence_ends"][-1]) != meta["n_tokens"]:
        raise CorruptStore(
            folder / "sentence_ends.bin",
            f"ends at token {arrays['sentence_ends'][-1]}, not {meta['n_tokens']}",
        )
    if int(arrays["document_ends"][-1]) != meta["n_sentences"]:
        raise CorruptStore(
            folder / "document_ends.bin",
            f"ends at sentence {arrays['document_ends'][-1]}, not {meta['n_sentences']}",
        )
    counts = {key: meta[key] for key in ("n_documents", "n_sentences", "n_tokens")}
    return TokenStore(folder=folder, fingerprint=meta["fingerprint"], **counts, **arrays)


def map_array(folder: Path, name: str, info: dict[str, Any], length: int) -> np.ndarray:
    path = folder / f"{name}.bin"
    if info.get("length") != length or length < 1:
        raise CorruptStore(
            folder / META_FILE, f"{name} has {info.get('length')} entries, the counts say {length}"
        )
    try:
        dtype = np.dtype(info["dtype"])
    except TypeError:
        raise CorruptStore(folder / META_FILE, f"{name} has no dtype {info['dtype']!r}") from None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptStore(path, "missing") from None
    if size != length * dtype.itemsize:
        raise CorruptStore(path, f"{size} bytes, expected {length * dtype.itemsize} ({length} x {dtype})")
    return np.memmap(path, dtype=dtype, mode="r", shape=(length,))


def verify_store(folder: str | Path) -> TokenStore:
    """Open the store in ``folder`` and re-hash every array against its recorded sha256."""
    folder = Path(folder)
    meta = read_meta(folder)
    store = open_store(folder, meta)
    for name in ARRAYS:
        path = folder / f"{name}.bin"
        if file_sha256(path) != meta["arrays"][name]["sha256"]:
            raise CorruptStore(path, "content differs from the sha256 recorded when it was written")
    return store


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def build_store(folder: Path, fingerprint: str, documents: Iterable[Document], progress: bool) -> TokenStore:
    """Stream ``documents`` into a new store in ``folder``, replacing what was there."""
    with atomic_folder(folder) as scratch:
        writer = CorpusWriter(scratch)
        try:
            total = len(documents) if hasattr(documents, "__len__") else None
            for document in tqdm(
                documents, total=total, unit="doc", desc="token store", disable=not progress
            ):
                writer.add(document)
            meta = writer.finish()
        finally:
            writer.close()
        meta = {"format": FORMAT, "fingerprint": fingerprint, **meta}
        with open(scratch / META_FILE, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
    log.info(
        "token store %s: %d documents, %d sentences, %d tokens (%s); "
        "skipped %d empty documents and %d empty sentences",
        folder,
        meta["n_documents"],
        meta["n_sentences"],
        meta["n_tokens"],
        meta["arrays"]["tokens"]["dtype"],
        meta["skipped_documents"],
        meta["skipped_sentences"],
    )
    return open_store(folder, meta)


class ArrayWriter:
    """One flat array on disk, appended in chunks and hashed as it is written."""

    def __init__(self, path: Path, dtype: np.dtype | type):
        self.path = path
        self.start(dtype)

    def start(self, dtype: np.dtype | type) -> None:
        self.dtype = np.dtype(dtype)
        self.file = open(self.path, "wb")  # noqa: SIM115 (open until finish or close)
        self.digest = hashlib.sha256()
        self.length = 0

    def append(self, values: Any) -> None:
        array = np.ascontiguousarray(values, dtype=self.dtype)
        self.file.write(array.data)
        self.file.flush()  # hand each chunk to the OS now: Python's buffer is not part of the file yet
        self.digest.update(array.data)
        self.length += len(array)

    def widen(self, dtype: np.dtype | type) -> None:
        """Rewrite what is written so far in the wider ``dtype`` (once, when a token id outgrows uint16)."""
        self.file.close()
        narrow_path = self.path.with_suffix(".narrow")
        os.replace(self.path, narrow_path)
        narrow, length = self.dtype, self.length
        self.start(dtype)
        step = HASH_BLOCK // narrow.itemsize
        for start in range(0, length, step):
            count = min(step, length - start)
            self.append(np.fromfile(narrow_path, dtype=narrow, count=count, offset=start * narrow.itemsize))
        narrow_path.unlink()

    def finish(self) -> dict[str, Any]:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return {"dtype": self.dtype.str, "length": self.length, "sha256": self.digest.hexdigest()}


class CorpusWriter:
    """Buffers sentences and appends them to the four arrays every ``FLUSH_SENTENCES`` sentences."""

    def __init__(self, folder: Path):
        self.writers = {
            "tokens": ArrayWriter(folder / "tokens.bin", np.uint16),
            "word_starts": ArrayWriter(folder / "word_starts.bin", np.uint8),
            "sentence_ends": ArrayWriter(folder / "sentence_ends.bin", np.int64),
            "document_ends": ArrayWriter(folder / "document_ends.bin", np.int64),
        }
        self.tokens: list[int] = []
        self.word_starts: list[bool] = []
        self.sentence_ends: list[int] = []
        self.document_ends: list[int] = []
        self.n_tokens = self.n_sentences = self.n_documents = 0
        self.documents_read = self.skipped_documents = self.skipped_sentences = 0

    def add(self, document: Document) -> None:
        before = self.n_sentences
        for number, (token_ids, word_starts) in enumerate(document):
            if len(token_ids) != len(word_starts):
                raise BertkitError(
                    f"document {self.documents_read}, sentence {number}: {len(token_ids)} token ids "
                    f"but {len(word_starts)} word starts (expected one flag per token)"
                )
            if not len(token_ids):
                self.skipped_sentences += 1
                continue
            self.tokens.extend(token_ids)
            self.word_starts.extend(word_starts)
            self.n_tokens += len(token_ids)
            self.n_sentences += 1
            self.sentence_ends.append(self.n_tokens)
        self.documents_read += 1
        if self.n_sentences == before:
            self.skipped_documents += 1
            return
        self.n_documents += 1
        self.document_ends.append(self.n_sentences)
        if len(self.sentence_ends) >= FLUSH_SENTENCES:
            self.flush()

    def flush(self) -> None:
        first = self.documents_read - len(self.document_ends)
        tokens = np.asarray(self.tokens, dtype=np.int64)
        if len(tokens) and (tokens.min() < 0 or tokens.max() > np.iinfo(np.int32).max):
            bad = tokens.min() if tokens.min() < 0 else tokens.max()
            raise BertkitError(
                f"documents {first} to {self.documents_read - 1}: token id {bad} is not a vocabulary id"
            )
        if len(tokens) and tokens.max() > np.iinfo(self.writers["tokens"].dtype).max:
            self.writers["tokens"].widen(np.int32)
        for name in ARRAYS:
            self.writers[name].append(tokens if name == "tokens" else getattr(self, name))
            getattr(self, name).clear()

    def finish(self) -> dict[str, Any]:
        self.flush()
        if not self.n_tokens:
            raise BertkitError(
                f"the corpus has no tokens: {self.documents_read} documents read, every one empty "
                "(is the input empty, or did the tokenizer drop everything?)"
            )
        return {
            "n_documents": self.n_documents,
            "n_sentences": self.n_sentences,
            "n_tokens": self.n_tokens,
            "skipped_documents": self.skipped_documents,
            "skipped_sentences": self.skipped_sentences,
            "arrays": {name: writer.finish() for name, writer in self.writers.items()},
        }

    def close(self) -> None:
        for writer in self.writers.values():
            writer.file.close()


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a scratch folder beside ``folder``; when the block succeeds it replaces ``folder`` whole.

    The scratch is fsynced, the old folder moved aside to ``.NAME.old``, the new one renamed in, the
    parent fsynced and the old one removed. A kill between the renames leaves only ``.NAME.old``, which
    ``recover_aside`` puts back; a kill before them leaves a scratch that ``remove_orphans`` deletes.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_aside(folder)
    remove_orphans(folder)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=BUILDING))
    try:
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        (scratch / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
        yield scratch
        (scratch / OWNER_FILE).unlink()
        swap_folder(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def recover_aside(folder: Path) -> None:
    """Finish or undo a swap that a kill interrupted, so the complete folder ends under its name."""
    if atomic_recover_aside(folder):
        log.info("%s: put back the previous version, left aside by an interrupted replacement", folder)


def remove_orphans(folder: Path) -> None:
    """Delete the scratch folders of builds of ``folder`` that were killed (their process is gone)."""
    for scratch in folder.parent.glob(f".{folder.name}.*{BUILDING}"):
        try:
            owner = json.loads((scratch / OWNER_FILE).read_text(encoding="utf-8"))
            host, pid = owner["host"], int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            host, pid = socket.gethostname(), None  # killed before it wrote its owner
        if host != socket.gethostname():
            log.info("leaving %s alone: a build on %s may still be writing it", scratch, host)
            continue
        if pid is not None and process_alive(pid):
            continue  # another build of the same folder is running
        shutil.rmtree(scratch, ignore_errors=True)
        log.info("removed %s, left behind by a killed build", scratch)


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def check_replaceable(folder: Path, names: tuple[str, ...], what: str) -> None:
    """Refuse to rebuild over a folder that holds none of our files: it is not ours to delete."""
    if folder.exists() and not folder.is_dir():
        raise BertkitError(f"{folder} is a file, expected a folder for the {what}")
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / name).exists() for name in names):
        raise BertkitError(
            f"{folder} holds other files (none of {', '.join(names)}): refusing to replace it with the "
            f"{what}; choose a new or empty folder"
        )
