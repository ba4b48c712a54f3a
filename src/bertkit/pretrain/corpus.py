"""Read pretraining documents from plain-text files, streamed line by line, and cut them into sentences.

A document is a list of sentences (what BERT's next-sentence pairs are drawn from); ``CorpusStats``
counts what was read, and ``one_sentence_warning`` tells when those documents make NSP meaningless.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bertkit.data.readers.text import is_cjk
from bertkit.errors import ON_BAD_LINE, BadInputError, BadLines, BertkitError

log = logging.getLogger(__name__)

DOCUMENT_MODES = ("blank", "file", "line")
# "split": a paragraph's lines are unwrapped and cut at sentence ends; "line": each line is one sentence,
# as in the input of Google's create_pretraining_data.py (one sentence per line, blank lines between
# documents), for corpora already split, or whose lines are tweets or titles without end punctuation
SENTENCE_MODES = ("split", "line")
# Part of the fingerprint: bump it when the reading or sentence rules change, so old shards are rebuilt.
READER_VERSION = 1
# Above this share of one-sentence documents, next-sentence pairs are nearly all random (BERT's pairing
# needs two sentences in a document to make an "is next" pair).
ONE_SENTENCE_LIMIT = 0.5
CORPUS_SUFFIX = ".txt"


@dataclass
class CorpusOptions:
    """How files are cut into documents. The regexes are searched (``re.search``) in each line as read,
    without its line ending; ``doc_start`` is tried before ``drop_lines``, so a heading can both start a
    document and be dropped."""

    # "blank": a blank line ends a document; "file": one document per file; "line": one per line
    documents: str = "blank"
    sentences: str = "split"  # see SENTENCE_MODES
    doc_start: str | None = None  # a matching line starts a new document (WikiText: r"^ = [^=].* = $")
    # lines up to and including the first match are dropped (Gutenberg: r"^\*\*\* ?START OF")
    keep_from: str | None = None
    # the first matching line and all after it are dropped (Gutenberg: r"^\*\*\* ?END OF")
    keep_until: str | None = None
    drop_lines: str | None = None  # matching lines are dropped, as if they were not there
    min_sentence_chars: int = 1  # shorter sentences are dropped; 1 keeps every one (dropping text is opt-in)
    on_bad_line: str = "error"  # "warn": skip and count lines that are not UTF-8, files without keep_from
    # the lines of a paragraph are joined with a space even between CJK characters: in a segmented
    # corpus (words separated by spaces) a line ends a word, which joining without one would glue on
    space_between_lines: bool = False

    def __post_init__(self) -> None:
        if self.documents not in DOCUMENT_MODES:
            raise BertkitError(f"documents must be one of {DOCUMENT_MODES}, got {self.documents!r}")
        if self.sentences not in SENTENCE_MODES:
            raise BertkitError(f"sentences must be one of {SENTENCE_MODES}, got {self.sentences!r}")
        if self.on_bad_line not in ON_BAD_LINE:
            raise BertkitError(f"on_bad_line must be one of {ON_BAD_LINE}, got {self.on_bad_line!r}")
        if self.min_sentence_chars < 1:
            raise BertkitError(f"min_sentence_chars must be at least 1, got {self.min_sentence_chars}")
        for name in ("doc_start", "keep_from", "keep_until", "drop_lines"):
            _compile(name, getattr(self, name))

    @classmethod
    def of(cls, source: Any) -> CorpusOptions:
        """The options from an object with attributes of the same names (the pretrain config section,
        parsed command-line flags); what it lacks keeps its default."""
        names = [f.name for f in fields(cls)]
        return cls(**{name: getattr(source, name) for name in names if hasattr(source, name)})


@dataclass
class Document:
    """The sentences of one document and where it starts (the 1-based line of its first kept line)."""

    sentences: list[str]
    path: str
    line: int


@dataclass
class CorpusStats:
    """What ``read_documents`` read; filled as documents are yielded, complete once the stream ends."""

    files: int = 0
    documents: int = 0
    sentences: int = 0
    one_sentence_documents: int = 0
    characters: int = 0
    short_sentences: int = 0  # dropped by min_sentence_chars
    bad_lines: int = 0  # skipped under on_bad_line="warn"

    @property
    def one_sentence_share(self) -> float:
        return self.one_sentence_documents / self.documents if self.documents else 0.0

    def summary(self) -> str:
        return (
            f"{self.files} files, {self.documents} documents, {self.sentences} sentences, "
            f"{self.characters} characters, {self.one_sentence_share:.0%} one-sentence documents"
        )


_ADVICE = {
    "blank": "a blank line seems to follow every sentence or paragraph: use documents='file' with"
    " doc_start (WikiText: --documents file --doc-start '^ = [^=].* = $' --drop-lines '^ = ')",
    "line": "each line holds one sentence: use documents='blank' or 'file' (with doc_start)",
    "file": "each file holds one sentence: put related sentences in one file",
}


def one_sentence_warning(
    stats: CorpusStats, options: CorpusOptions, limit: float = ONE_SENTENCE_LIMIT
) -> str | None:
    """A warning for the caller to show when most documents have one sentence, else None.

    Such documents give no "is next" pairs, so NSP labels would be nearly all "random" and learn nothing.
    """
    if stats.one_sentence_share <= limit:
        return None
    return (
        f"{stats.one_sentence_share:.0%} of {stats.documents} documents have one sentence, so next-sentence "
        f"pairs would be nearly all random; {_ADVICE[options.documents]}"
    )


def _compile(name: str, pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise BertkitError(f"{name}: {pattern!r} is not a valid regular expression ({err})") from None


def corpus_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The files of a corpus: each named file whatever its suffix, and the ``*.txt`` files under each
    folder (recursively, sorted, hidden files and folders skipped), each file once, in input order.

    Folders often hold a README, a licence or a manifest beside the texts (Gutenberg's SOURCE.md and
    MANIFEST.tsv): taking every file would train on them, so folders give ``.txt`` files only; name other
    files (``wiki.train.tokens``) directly. A missing path, or a folder without text files, is an error.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise BertkitError("no corpus files given")
    files: list[Path] = []
    seen: set[Path] = set()
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = _folder_files(path)
        elif path.is_file():
            found = [path]
        elif path.exists():
            raise BertkitError(f"{path}: not a regular file or a folder")
        else:
            raise BertkitError(f"{path}: no such file or folder")
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


def _folder_files(folder: Path) -> list[Path]:
    found, others = [], 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(root, name)
            if name.startswith(".") or not path.is_file():
                continue
            if name.lower().endswith(CORPUS_SUFFIX):
                found.append(path)
            else:
                others += 1
    if not found:
        raise BertkitError(
            f"{folder}: no {CORPUS_SUFFIX} files in this folder ({others} other files skipped); "
            "name other files directly"
        )
    if others:
        log.warning(
            "%s: %d %s files read, %d other files skipped (name them directly to read them; compressed "
            "files are not read)",
            folder,
            len(found),
            CORPUS_SUFFIX,
            others,
        )
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def corpus_fingerprint(inputs: Sequence[str | Path], options: CorpusOptions) -> str:
    """The identity of a corpus as read with ``options``: equal fingerprints mean equal documents, so
    preprocessed shards can be reused. Covers each file's absolute path, size and sha256, the options and
    ``READER_VERSION``."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"reader": READER_VERSION, "options": asdict(options)}, sort_keys=True).encode())
    for path in corpus_files(inputs):
        entry = [str(path.resolve()), path.stat().st_size, _file_sha256(path)]
        digest.update(json.dumps(entry).encode())
    return digest.hexdigest()


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_documents(
    inputs: Sequence[str | Path], options: CorpusOptions, stats: CorpusStats | None = None
) -> Iterator[Document]:
    """Stream the non-empty documents of the corpus files (see ``corpus_files``), file by file.

    Files are read line by line (UTF-8, a BOM skipped, LF, CRLF or CR). Within a document, consecutive
    non-blank lines form a paragraph, unwrapped into one text and cut by ``split_sentences`` (with
    ``sentences="line"``, each line is a sentence as it stands); with ``documents="line"`` each line is
    a document of its own. The paths are checked now; files are read as the documents
    are taken. ``stats`` is filled along the way. A stream that ends without one document is an error.
    """
    files = corpus_files(inputs)
    return _stream_documents(files, options, stats if stats is not None else CorpusStats())


def _stream_documents(files: list[Path], options: CorpusOptions, stats: CorpusStats) -> Iterator[Document]:
    for path in files:
        bad = BadLines(str(path), options.on_bad_line)
        stats.files += 1
        yield from _file_documents(path, options, bad, stats)
        stats.bad_lines += sum(bad.counts.values())
        bad.warn_summary()
    if not stats.documents:
        raise BertkitError(
            f"no documents in {len(files)} corpus file(s) starting with {files[0]}: every line was blank "
            "or dropped (check keep_from, keep_until, drop_lines and min_sentence_chars)"
        )


@dataclass
class _DocumentBuilder:
    """Collects the lines of one paragraph and the sentences of one document."""

    path: str
    min_chars: int
    stats: CorpusStats
    split: bool  # cut the unwrapped paragraph at sentence ends (else each line is a sentence)
    always_space: bool = False  # CorpusOptions.space_between_lines
    sentences: list[str] = field(default_factory=list)
    paragraph: list[str] = field(default_factory=list)
    line: int = 0

    def add_line(self, number: int, text: str) -> None:
        if not self.sentences and not self.paragraph:
            self.line = number
        self.paragraph.append(text.strip())

    def end_paragraph(self) -> None:
        if not self.paragraph:
            return
        lines = [line for line in self.paragraph if line]
        for sentence in split_sentences(unwrap_lines(lines, self.always_space)) if self.split else lines:
            if len(sentence) >= self.min_chars:
                self.sentences.append(sentence)
            else:
                self.stats.short_sentences += 1
        self.paragraph = []

    def end_document(self) -> list[Document]:
        """The document collected so far (none if it is empty), and a fresh start."""
        self.end_paragraph()
        if not self.sentences:
            return []
        doc = Document(sentences=self.sentences, path=self.path, line=self.line)
        self.stats.documents += 1
        self.stats.sentences += len(doc.sentences)
        self.stats.one_sentence_documents += len(doc.sentences) == 1
        self.stats.characters += sum(len(s) for s in doc.sentences)
        self.sentences = []
        return [doc]


def _file_documents(
    path: Path, options: CorpusOptions, bad: BadLines, stats: CorpusStats
) -> Iterator[Document]:
    doc_start = _compile("doc_start", options.doc_start)
    drop_lines = _compile("drop_lines", options.drop_lines)
    builder = _DocumentBuilder(
        str(path),
        options.min_sentence_chars,
        stats,
        options.sentences == "split",
        options.space_between_lines,
    )
    for number, line in _kept_lines(path, options, bad):
        if doc_start is not None and doc_start.search(line):
            yield from builder.end_document()
        if drop_lines is not None and drop_lines.search(line):
            continue
        if not line.strip():
            if options.documents == "blank":
                yield from builder.end_document()
            else:
                builder.end_paragraph()
            continue
        builder.add_line(number, line)
        if options.documents == "line":
            yield from builder.end_document()
    yield from builder.end_document()


def _kept_lines(path: Path, options: CorpusOptions, bad: BadLines) -> Iterator[tuple[int, str]]:
    """The numbered lines of a file between the keep_from line and the keep_until line (both dropped)."""
    keep_from = _compile("keep_from", options.keep_from)
    keep_until = _compile("keep_until", options.keep_until)
    lines = _numbered_lines(path, bad)
    if keep_from is not None:
        for _, line in lines:
            if keep_from.search(line):
                break
        else:
            bad.report(0, "no keep_from line", f"no line matches keep_from {options.keep_from!r}")
            return
    for number, line in lines:
        if keep_until is not None and keep_until.search(line):
            return  # the rest of the file is not even read
        yield number, line


# With errors="surrogateescape" each undecodable byte becomes a lone surrogate U+DC80..U+DCFF, which valid
# UTF-8 never decodes to: a bad line is found without decoding twice, and the reading goes on after it.
_BAD_BYTE = re.compile("[\udc80-\udcff]")


def _numbered_lines(path: Path, bad: BadLines) -> Iterator[tuple[int, str]]:
    """``(number, line)`` from 1, without line endings; a line that is not valid UTF-8 is reported."""
    # newline=None splits at "\n", "\r\n" and "\r" only (not at U+2028 as str.splitlines would)
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline=None) as f:
        for number, line in enumerate(f, 1):
            line = line.removesuffix("\n")
            found = _BAD_BYTE.search(line)
            if found is None:
                yield number, line
                continue
            if number == 1 and line.startswith(("\udcff\udcfe", "\udcfe\udcff")):
                # a UTF-16 byte-order mark: every line would be read as NUL-strewn text, whatever the policy
                message = "the file is UTF-16 (its byte-order mark says so): re-encode it as UTF-8"
                raise BadInputError(str(path), 1, f"{message} (iconv -f UTF-16 -t UTF-8)")
            byte = ord(found.group()) - 0xDC00
            where = f"byte 0x{byte:02x} at character {found.start() + 1}"
            bad.report(number, "bad UTF-8", f"not valid UTF-8 ({where}); re-encode the file as UTF-8")


def _is_wide(char: str) -> bool:
    # Chinese and Japanese write no spaces between words, Korean (Hangul) does.
    return unicodedata.east_asian_width(char) in ("W", "F") and not "\uac00" <= char <= "\ud7a3"


def unwrap_lines(lines: Sequence[str], always_space: bool = False) -> str:
    """Join the stripped lines of a hard-wrapped paragraph: with a space, or with none between two wide
    (CJK) characters, where a space would cut a word in two (unless ``always_space``: segmented text)."""
    # pieces joined once at the end: ``text += line`` copies the text so far each time, which is
    # quadratic in a paragraph that runs for thousands of lines (a file without blank lines)
    pieces: list[str] = []
    for line in lines:
        if not line:
            continue
        if pieces and (always_space or not (_is_wide(pieces[-1][-1]) and _is_wide(line[0]))):
            pieces.append(" ")
        pieces.append(line)
    return "".join(pieces)


# Sentence cutting is hand-written: no sentence splitter (NLTK punkt, pysbd) is available offline, and a
# few plain rules are predictable, fast on gigabytes, and good enough for drawing NSP pairs.
_STRONG_ENDS = "。！？；｡"  # end a Chinese sentence wherever they are
_ELLIPSES = "…⋯"
_LATIN_ENDS = ".!?"
# Closing quotes and brackets stay with the sentence they close; "_" is Gutenberg's italics marker.
_CLOSERS = "\"'”’»)]}」』）》】〕〉_"
_OPENERS = "\"'“‘«„([{「『（《【_"
_CANDIDATE = re.compile(f"[{re.escape(_STRONG_ENDS + _ELLIPSES + _LATIN_ENDS)}]+[{re.escape(_CLOSERS)}]*")
_NEXT_CHAR = re.compile(r"\s+(\S)")
_LEADING_MARKS = re.compile(r"^[\W_]+")
_ABBREVIATIONS = frozenset(
    ("mr", "mrs", "ms", "mx", "dr", "st", "prof", "rev", "hon", "sr", "jr", "gen", "col", "capt", "lt")
    + ("sgt", "mt", "vs", "etc", "cf", "fig", "p", "pp", "vol", "ch")
)
# Dotted letters (e.g., i.e., U.S., a.m.) and single capital initials (J. R. Smith); "I" is left out,
# as "... than I. Then" ends a sentence far more often than an initial I. does.
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]|[A-HJ-Z]")


def split_sentences(paragraph: str) -> list[str]:
    """Cut a paragraph into stripped, non-empty sentences, English, Chinese or mixed.

    Chinese: after 。！？；｡ (and …… after a Chinese character), no space needed. English: after ``.``, ``!``,
    ``?`` or ``...`` followed by whitespace and an upper-case letter, a digit, an opening quote or bracket,
    or a CJK character, but not after an abbreviation (Mr., e.g., J.). Closing quotes and brackets right
    after the mark stay with the sentence; ``3.14`` is never cut, as no space follows its point.
    """
    sentences, begin = [], 0
    for match in _CANDIDATE.finditer(paragraph):
        if match.end() < len(paragraph) and _ends_sentence(paragraph, match):
            sentences.append(paragraph[begin : match.end()])
            begin = match.end()
    sentences.append(paragraph[begin:])
    return [s for s in (s.strip() for s in sentences) if s]


def _ends_sentence(text: str, match: re.Match) -> bool:
    marks = match.group().rstrip(_CLOSERS)
    after = text[match.end()]
    if any(c in _STRONG_ENDS for c in marks):
        return True
    ellipsis = any(c in _ELLIPSES for c in marks)
    if ellipsis and match.start() > 0 and is_cjk(text[match.start() - 1]):
        return True
    if is_cjk(after):  # mixed text: "Great!很好"
        return ellipsis or "!" in marks or "?" in marks
    following = _NEXT_CHAR.match(text, match.end())
    if following is None:
        return False
    start = following.group(1)
    if not (start.isupper() or start.isdigit() or start in _OPENERS or is_cjk(start)):
        return False
    return not (marks == "." and _is_abbreviation(text, match.start()))


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the word that ends at the full stop at ``dot`` is an abbreviation or an initial."""
    begin = dot
    while begin > 0 and dot - begin < 12 and not text[begin - 1].isspace():
        begin -= 1
    word = _LEADING_MARKS.sub("", text[begin:dot])  # "(Dr.", "/Dr." (an italics marker), "_Mr."
    return word.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(word) is not None
