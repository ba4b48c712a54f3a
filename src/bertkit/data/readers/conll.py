"""Read CoNLL-style token files: one token per line with its columns, blank lines between sentences.

Handles the traps of real files: whitespace-only break lines, ``-DOCSTART-`` documents, BOM, CRLF, and
position suffixes glued to tokens (Weibo NER). Malformed lines are errors naming ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from bertkit.data.readers import TokenCorpus, finish_token_corpus, read_lines
from bertkit.errors import BadInputError, BadLines
from bertkit.records import TokenExample

_POSITION_SUFFIX = re.compile(r"^(.+?)(\d+)$")


def split_columns(line: str) -> list[str]:
    """A token line's columns: split on TAB when it has one (tokens may hold spaces), else on whitespace.
    Spaces around TAB-separated cells and trailing TABs are no part of any column (a tag ``"ORG "`` would
    be a type of its own)."""
    line = line.rstrip(" \t")
    return [cell.strip(" ") for cell in line.split("\t")] if "\t" in line else line.split()


def remove_position_suffix(token: str) -> str:
    """Strip a trailing position: ``"我0"`` -> ``"我"``, ``"e12"`` -> ``"e"``, ``"30"`` -> ``"3"``.

    Non-greedy, so a digit character keeps itself and only the position after it goes; tokens without
    a suffix stay as they are.
    """
    match = _POSITION_SUFFIX.match(token)
    return match.group(1) if match else token


@dataclass
class _Layout:
    """Where the token and the tag are, fixed by the first token line of the file."""

    n_columns: int
    token_column: int
    tag_column: int | None

    def describe(self) -> str:
        names = [
            "token" if i == self.token_column else "tag" if i == self.tag_column else "other"
            for i in range(self.n_columns)
        ]
        plural = "column" if self.n_columns == 1 else "columns"
        return f"{self.n_columns} {plural} ({', '.join(names)})"


def _layout(columns: list[str], token_column: int, tag_column: int | None, path: str, line: int) -> _Layout:
    n = len(columns)
    for name, index in (("token", token_column), ("tag", tag_column)):
        if index is not None and not -n <= index < n and not (name == "tag" and n == 1):
            raise BadInputError(path, line, f"{name} column {index} does not exist: the line has {n} columns")
    # A file of bare tokens is prediction input even when a tag column was asked for.
    tag = None if tag_column is None or n == 1 else tag_column % n
    return _Layout(n, token_column % n, tag)


@dataclass
class _Sentences:
    """Collects token lines into sentences and sentences into documents."""

    path: str
    labelled: bool
    examples: list[TokenExample] = field(default_factory=list)
    doc_id: int = 0
    pending: TokenExample | None = None

    def add(self, token: str, tag: str | None, line: int) -> None:
        if self.pending is None:
            self.pending = TokenExample([], [] if self.labelled else None, self.doc_id, self.path, [])
        self.pending.tokens.append(token)
        if self.pending.tags is not None:
            self.pending.tags.append(tag)
        self.pending.lines.append(line)

    def end_sentence(self) -> None:
        if self.pending is not None:
            self.examples.append(self.pending)
            self.pending = None

    def end_document(self) -> None:
        self.end_sentence()
        # A -DOCSTART- before any sentence (the usual first line) does not open an empty document 0.
        if self.examples and self.examples[-1].doc_id == self.doc_id:
            self.doc_id += 1


def is_docstart(line: str) -> bool:
    """A ``-DOCSTART-`` line, which starts a document (CoNLL-2003)."""
    return line.lstrip().startswith("-DOCSTART-")


def _is_comment(line: str, n_columns: int) -> bool:
    """A ``#`` line at the start of a sentence whose columns are not a token line's: GermEval's
    ``#<TAB>source<TAB>date``, CoNLL-U's ``# text = ...``. A token ``#`` (``#<TAB>O``) has the columns."""
    return line.startswith("#") and len(split_columns(line)) != n_columns


def _first_token_line(lines: list[str]) -> int | None:
    content = [i for i, line in enumerate(lines) if line.strip() and not is_docstart(line)]
    for k, i in enumerate(content):
        following = content[k + 1] if k + 1 < len(content) else None
        # a comment is told from a token "#" by the line after it, which has another number of columns
        if following is not None and _is_comment(lines[i], len(split_columns(lines[following]))):
            continue
        return i
    return None


def _collect(
    lines: list[str], layout: _Layout, strip_suffix: bool, sentences: _Sentences, bad: BadLines
) -> None:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            sentences.end_sentence()
            continue
        if is_docstart(line):
            sentences.end_document()
            continue
        if sentences.pending is None and _is_comment(line, layout.n_columns):
            continue  # copied as it is by predict's CoNLL writer
        columns = split_columns(line)
        if len(columns) != layout.n_columns:
            bad.report(number, "wrong column counts", f"expected {layout.describe()}, found {len(columns)}")
            continue
        token = columns[layout.token_column]
        tag = columns[layout.tag_column] if layout.tag_column is not None else None
        if not token or tag == "":
            bad.report(number, "empty columns", f"empty {'token' if not token else 'tag'} column")
            continue
        sentences.add(remove_position_suffix(token) if strip_suffix else token, tag, number)
    sentences.end_sentence()


def read_conll(
    path: str | Path,
    *,
    token_column: int = 0,
    tag_column: int | None = -1,
    scheme: str = "auto",
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
    strip_position_suffix: bool = False,
) -> TokenCorpus:
    """Read a CoNLL file into sentences (``TokenExample``) with their tag scheme.

    ``tag_column=None`` reads tokens only (``tags=None``); so does a file whose token lines all have a
    single column, so ``predict`` accepts bare token files. Every token line must have as many columns
    as the first. Blank or whitespace-only lines end sentences; ``-DOCSTART-`` lines start documents;
    ``#`` lines before a sentence with other columns than its tokens are comments (GermEval, CoNLL-U).
    ``labels`` fixes the tag set; ``scheme="auto"`` detects it. With ``on_bad_line="warn"`` a line with
    the wrong column count is skipped, an unknown or malformed tag becomes ``O`` and a sentence the
    scheme forbids is repaired (its conlleval reading), each counted and summarised as a warning.
    ``strip_position_suffix`` removes Weibo NER's digit suffixes (``我12`` -> ``我``).
    """
    path = str(path)
    bad = BadLines(path, on_bad_line)
    lines = read_lines(path)
    first = _first_token_line(lines)
    if first is None:
        raise BadInputError(path, 0, "no sentences found: the file has no token lines")
    layout = _layout(split_columns(lines[first]), token_column, tag_column, path, first + 1)
    sentences = _Sentences(path, labelled=layout.tag_column is not None)
    _collect(lines, layout, strip_position_suffix, sentences, bad)
    if not sentences.examples:
        raise BadInputError(path, 0, "no sentences found: every token line was malformed")
    return finish_token_corpus(sentences.examples, path, scheme, labels, bad)
