"""Readers turn files into records; this module holds what the token readers share.

``read_token_file`` picks a token reader by format; every token reader returns a ``TokenCorpus`` whose
tags were checked against the label set and the tag scheme by ``finish_token_corpus``.
"""

from __future__ import annotations

import codecs
import json
import logging
import reprlib
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.data import tagschemes
from bertkit.errors import BadInputError, BadLines
from bertkit.records import TokenExample

log = logging.getLogger(__name__)

TOKEN_FORMATS = ("auto", "conll", "jsonl", "spans", "text")


@dataclass
class TokenCorpus:
    """The sentences of one token file and the tag scheme they are in (after any repair)."""

    examples: list[TokenExample]
    scheme: str
    path: str


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 file, without line endings (LF or CRLF); a leading BOM is skipped.

    Splits on ``"\\n"`` only: ``str.splitlines`` would also cut at U+2028 and friends inside a line.
    Raises BadInputError naming the line of the first byte that is not valid UTF-8.
    """
    data = Path(path).read_bytes()
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start + skip
        line = data.count(b"\n", 0, at) + 1
        column = at - max(data.rfind(b"\n", 0, at) + 1, skip) + 1  # bytes, the BOM not counted
        message = f"not valid UTF-8 (byte 0x{data[at]:02x} at column {column}); re-encode the file as UTF-8"
        raise BadInputError(str(path), line, message) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def json_limit(err: RecursionError | ValueError) -> str:
    """What stopped ``json.loads`` besides bad syntax (a JSONDecodeError): nesting deeper than Python's
    stack allows (RecursionError), or an integer longer than ``int()`` reads (ValueError)."""
    if isinstance(err, RecursionError):
        return "nested too deeply to read"
    return f"a number of more than {sys.get_int_max_str_digits()} digits"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def shown(value: Any) -> str:
    """A value from a file as messages quote it: at most 3 levels deep and a few dozen characters, so a
    deeply nested or huge value neither overflows the stack nor floods the message."""
    return _SHORT.repr(value)


def _check_tag_set(examples: list[TokenExample], labels: Collection[str] | None, bad: BadLines) -> None:
    """Report malformed tags and tags outside ``labels``; in warn mode they become ``O``."""
    allowed = set(labels) if labels is not None else None
    expected = ", ".join(sorted(allowed or ())[:20]) + (" ..." if allowed and len(allowed) > 20 else "")
    for ex in examples:
        for i, tag in enumerate(ex.tags or ()):
            try:
                tagschemes.split_tag(tag)
            except ValueError as err:
                bad.report(ex.lines[i], "malformed tags", str(err))
                ex.tags[i] = "O"
                continue
            if allowed is not None and tag not in allowed:
                bad.report(ex.lines[i], "unknown tags", f"unknown tag {tag!r}; expected one of {expected}")
                ex.tags[i] = "O"


def _scheme_hint(examples: list[TokenExample], scheme: str) -> str:
    """Name the other schemes under which the whole file is valid, if any."""
    tag_sequences = [ex.tags for ex in examples if ex.tags]
    others = [
        other
        for other in tagschemes.SCHEMES
        if other != scheme and not any(tagschemes.invalid_transitions(tags, other) for tags in tag_sequences)
    ]
    return f" (the whole file is valid {' or '.join(others)}: try --tag-scheme {others[0]})" if others else ""


def _check_transitions(examples: list[TokenExample], scheme: str, bad: BadLines) -> None:
    """Report tags the scheme forbids, at the line of the offending token; in warn mode repair them."""
    hint = None
    for ex in examples:
        if not ex.tags:
            continue
        problems = tagschemes.invalid_transitions(ex.tags, scheme)
        if not problems:
            continue
        if hint is None:  # looked for once per file, and only when something is wrong
            hint = _scheme_hint(examples, scheme)
        for i, message in problems:
            bad.report(ex.lines[i], f"tags {scheme} forbids", message + hint)
        ex.tags = tagschemes.repair_tags(ex.tags, scheme)


def finish_token_corpus(
    examples: list[TokenExample],
    path: str,
    scheme: str,
    labels: Collection[str] | None,
    bad: BadLines,
) -> TokenCorpus:
    """Check the tags of a freshly read file, settle its scheme, log a summary and wrap it up.

    ``scheme="auto"`` detects the scheme over the whole file (``tagschemes.detect_scheme``); unlabelled
    files keep the requested scheme, or ``iob2`` for ``auto``.
    """
    if scheme != "auto" and scheme not in tagschemes.SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected auto or one of {tagschemes.SCHEMES}")
    _check_tag_set(examples, labels, bad)
    labelled = [ex.tags for ex in examples if ex.tags is not None]
    if scheme == "auto":
        scheme = tagschemes.detect_scheme(labelled)
    _check_transitions(examples, scheme, bad)
    bad.warn_summary()
    n_tokens = sum(len(ex) for ex in examples)
    n_docs = len({ex.doc_id for ex in examples})
    log.info(
        "%s: %d sentences, %d tokens, %d documents, scheme %s", path, len(examples), n_tokens, n_docs, scheme
    )
    return TokenCorpus(examples=examples, scheme=scheme, path=path)


def _sniff_json(lines: list[str], path: str) -> str:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise BadInputError(path, number, f"not valid JSON ({err.msg})") from None
        except (RecursionError, ValueError) as err:
            raise BadInputError(path, number, f"not valid JSON ({json_limit(err)})") from None
        if isinstance(record, dict) and "tokens" in record:
            return "jsonl"
        if isinstance(record, dict) and "text" in record:
            return "spans"
        raise BadInputError(path, number, "a JSON record needs a 'tokens' or a 'text' key")
    raise BadInputError(path, 0, "no records found: the file is empty")


CONLL_SUFFIXES = (".conll", ".conllu", ".conll03", ".bio", ".iob", ".iob1", ".iob2", ".bioes", ".bmes")


def _looks_like_columns(line: str) -> bool:
    """A line of two or more columns: TAB-separated, or space-separated and ending in a tag.

    Space-separated plain text has several "columns" too; a tag in the last one tells CoNLL apart.
    """
    if "\t" in line:
        return len(line.split("\t")) >= 2
    columns = line.split()
    if len(columns) < 2:
        return False
    try:
        tagschemes.split_tag(columns[-1])
    except ValueError:
        return False
    return True


def detect_token_format(path: str | Path) -> str:
    """Guess a token file's format from its name and first lines.

    ``.jsonl``/``.json``: the first record decides (``tokens`` -> jsonl, ``text`` -> spans); ``.conll``
    and the other ``CONLL_SUFFIXES`` -> conll. Otherwise, when most of the first 50 non-blank lines have
    two or more columns (TAB-separated, or space-separated with a tag last) -> conll. Else, when most of
    them are a single token: conll (a bare token file, one token a line) unless the name ends in ``.txt``
    and no blank line separates sentences; and when most hold several words without a tag: text.
    """
    path = str(path)
    lines = read_lines(path)
    if path.endswith((".jsonl", ".json")):
        return _sniff_json(lines, path)
    sample = [line for line in lines if line.strip()][:50]
    if path.lower().endswith(CONLL_SUFFIXES) or (
        sample and sum(map(_looks_like_columns, sample)) * 2 > len(sample)
    ):
        return "conll"
    if not sample or sum(len(line.split()) == 1 for line in sample) * 2 <= len(sample):
        return "text"
    if path.endswith(".txt"):
        content = [i for i, line in enumerate(lines) if line.strip()]
        return "conll" if content[-1] - content[0] + 1 > len(content) else "text"  # a blank line inside
    return "conll"


def read_token_file(
    path: str | Path,
    *,
    format: str = "auto",
    scheme: str = "auto",
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
    token_column: int = 0,
    tag_column: int | None = -1,
    strip_position_suffix: bool = False,
    **format_options: Any,
) -> TokenCorpus:
    """Read a token-classification file in any supported format.

    ``format`` is one of ``auto``, ``conll``, ``jsonl``, ``spans``, ``text`` (see ``detect_token_format``).
    Callers pass the same options whatever the format: the column options and ``strip_position_suffix``
    only matter for CoNLL, except ``tag_column=None`` (unlabelled input), which leaves out the tags of
    every format. ``format_options`` go to the chosen reader as they are (e.g. ``tokens_key`` for jsonl).
    """
    # The readers import TokenCorpus from this module, so they are imported here, not at the top.
    from bertkit.data.readers.conll import read_conll
    from bertkit.data.readers.jsonl import read_jsonl
    from bertkit.data.readers.spans import read_spans
    from bertkit.data.readers.text import read_text

    if format not in TOKEN_FORMATS:
        raise ValueError(f"unknown token file format {format!r}; expected one of {TOKEN_FORMATS}")
    if format == "auto":
        format = detect_token_format(path)
    common = {"scheme": scheme, "labels": labels, "on_bad_line": on_bad_line, **format_options}
    if format == "conll":
        columns = {"token_column": token_column, "tag_column": tag_column}
        return read_conll(path, **columns, strip_position_suffix=strip_position_suffix, **common)
    if format == "jsonl":
        return read_jsonl(path, **({"tags_key": None} if tag_column is None else {}), **common)
    if format == "spans":
        return read_spans(path, with_entities=tag_column is not None, **common)
    return read_text(path, **common)
