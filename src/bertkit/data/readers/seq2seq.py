"""Read sequence-to-sequence data (summaries, translations, dialogue replies) into ``Seq2SeqExample`` records.

Four layouts: JSON lines of ``{"source", "target"}`` (SciTLDR: the source a list of sentences, several
references) or of ``{"turns": [...]}`` dialogues; TSV (split on TAB, no quoting: Tatoeba's ``cmn.txt``)
and CSV, with or without a header row; and KdConv's pretty-printed JSON array of conversations. A
dialogue gives one pair per reply (``dialogue_pairs``); read unlabelled (prediction input), it gives one
record, the conversation so far, whose next turn is to be generated. Every record keeps its 1-based line
in the file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.data.readers import json_limit, read_lines
from bertkit.data.readers.jsonl import parse_json_record

# The row splitting, CSV quoting with line numbers and blank-line policy of the classification tables.
from bertkit.data.readers.tabular import _csv_rows, _drop_blank_rows, _Row, _tsv_rows, header_like
from bertkit.errors import BadInputError, BadLines
from bertkit.records import Seq2SeqExample

log = logging.getLogger(__name__)

SEQ2SEQ_FORMATS = ("auto", "jsonl", "tsv", "csv", "kdconv")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".tsv": "tsv", ".txt": "tsv", ".csv": "csv"}
_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # whitespace as JSON defines it (raw_decode skips none)
_UNLABELLED_HINT = "for a file without targets, read it with labelled=False"


@dataclass(frozen=True)
class _Options:
    """What ``read_seq2seq`` was asked to read, handed whole to the format readers."""

    labelled: bool
    source_field: str
    target_field: str
    control_field: str | None
    source_column: int
    target_column: int
    context_turns: int
    separator: str


@dataclass(frozen=True)
class _Columns:
    """The field indices a delimited row is read from; ``target`` None: the file has no target column."""

    source: int
    target: int | None
    control: int | None
    shown: str  # how the columns were given, for messages


def read_seq2seq(
    path: str | Path,
    *,
    labelled: bool = True,
    fmt: str = "auto",
    source_field: str = "source",
    target_field: str = "target",
    control_field: str | None = None,
    source_column: int = 0,
    target_column: int = 1,
    context_turns: int = 0,
    separator: str = "[SEP]",
    on_bad_line: str = "error",
) -> list[Seq2SeqExample]:
    """Read a source/target file into ``Seq2SeqExample`` records.

    ``fmt`` is one of ``SEQ2SEQ_FORMATS`` (``auto``: see ``detect_seq2seq_format``). JSON records and
    header rows name their fields ``source_field``/``target_field``/``control_field``; headerless TSV/CSV
    rows use ``source_column``/``target_column`` (Tatoeba ``cmn.txt``: 0, 1 for en->zh; 1, 0 for zh->en).
    With ``labelled=True`` every record needs a target; with ``labelled=False`` targets are read when
    present, else None. Dialogues (``{"turns"}`` lines, KdConv) become pairs as ``dialogue_pairs`` makes
    them, with ``context_turns`` and ``separator``. Text is kept as written. A bad record raises
    ``BadInputError`` at its line, or with ``on_bad_line="warn"`` is skipped and counted; invalid JSON in
    a KdConv array and malformed CSV quoting stop the file whatever the policy (nothing after can be read).
    """
    path = str(path)
    if fmt not in SEQ2SEQ_FORMATS:
        raise ValueError(f"unknown seq2seq file format {fmt!r}; expected one of {SEQ2SEQ_FORMATS}")
    if source_column < 0 or target_column < 0:
        raise ValueError(f"columns are 0-based indices, got source {source_column}, target {target_column}")
    if context_turns < 0:
        raise ValueError(f"context_turns must be 0 (all previous turns) or more, got {context_turns}")
    bad = BadLines(path, on_bad_line)
    opts = _Options(
        labelled,
        source_field,
        target_field,
        control_field,
        source_column,
        target_column,
        context_turns,
        separator,
    )
    lines = read_lines(path)
    if fmt == "auto":
        fmt = _detect(path, lines)
    if fmt == "jsonl":
        examples = _read_jsonl(lines, opts, path, bad)
    elif fmt == "kdconv":
        examples = _read_kdconv(lines, opts, path, bad)
    else:
        examples = _read_delimited(lines, "\t" if fmt == "tsv" else ",", opts, path, bad)
    bad.warn_summary()
    if not examples:
        raise BadInputError(path, 0, f"no {fmt} records found: the file is empty or every record was bad")
    # Each skipped record (a line, a row, a conversation) was reported exactly once.
    log.info("%s: %d pairs (%d bad records skipped)", path, len(examples), sum(bad.counts.values()))
    return examples


def detect_seq2seq_format(path: str | Path) -> str:
    """The format ``read_seq2seq`` reads ``path`` as under ``fmt="auto"``.

    By suffix: ``.jsonl`` -> jsonl, ``.tsv``/``.txt`` -> tsv, ``.csv`` -> csv, ``.json`` -> kdconv when the
    file is a JSON array (KdConv's layout; JSON lines cannot start with one), else jsonl. Any other name,
    by the first non-blank line: ``{`` -> jsonl, ``[`` -> kdconv, commas and no TAB -> csv, else tsv.
    """
    return _detect(str(path), read_lines(path))


def _detect(path: str, lines: list[str]) -> str:
    suffix = Path(path).suffix.lower()
    first = next((line.strip() for line in lines if line.strip()), "")
    if suffix == ".json":
        # An array that is not of conversations is reported element by element, at each one's line,
        # which says more than the JSON-lines reader's "not valid JSON" at line 1.
        return "kdconv" if first.startswith("[") else "jsonl"
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if first.startswith("{"):
        return "jsonl"
    if first.startswith("["):
        return "kdconv"
    return "csv" if "," in first and "\t" not in first else "tsv"


def dialogue_pairs(
    turns: list[str],
    *,
    conversation: str,
    context_turns: int = 0,
    separator: str = "[SEP]",
    path: str = "",
    line: int = 0,
) -> list[Seq2SeqExample]:
    """One pair per reply: for each turn ``i >= 1``, the source is the turns before it (all of them, or
    the last ``context_turns`` when > 0) joined with ``f" {separator} "``, oldest first and newest last,
    and the target is ``[turns[i]]``; ``id`` is ``f"{conversation}/{i}"``. ``n`` turns give ``n - 1`` pairs.

    Turns are kept as written. A blank turn raises BadInputError at ``path:line``: dropping it would make
    a speaker answer themselves, and keeping it would train on an empty reply (the readers skip and
    count the whole conversation under ``on_bad_line="warn"``).
    """
    if context_turns < 0:
        raise ValueError(f"context_turns must be 0 (all previous turns) or more, got {context_turns}")
    blank = _blank_turn(turns)
    if blank is not None:
        raise BadInputError(path, line, f"conversation {conversation!r}: turn {blank} is empty")
    joiner = f" {separator} "
    pairs = []
    for i in range(1, len(turns)):
        context = turns[max(0, i - context_turns) if context_turns else 0 : i]
        target = [turns[i]]
        pairs.append(
            Seq2SeqExample(joiner.join(context), target, id=f"{conversation}/{i}", path=path, line=line)
        )
    return pairs


def _blank_turn(turns: list[str]) -> int | None:
    """The 0-based index of the first blank turn, or None."""
    return next((i for i, turn in enumerate(turns) if not turn.strip()), None)


def _dialogue(
    turns: list[str], conversation: str, opts: _Options, where: tuple[str, int], bad: BadLines
) -> list[Seq2SeqExample]:
    """The pairs of one conversation, or none after reporting why it gives none."""
    path, line = where
    blank = _blank_turn(turns)
    if blank is not None:
        bad.report(line, "empty turns", f"conversation {conversation!r}: turn {blank} (from 0) is empty")
        return []
    if not opts.labelled:  # prediction input: the conversation so far, whose next turn is wanted
        if not turns:
            bad.report(line, "conversations without turns", f"conversation {conversation!r} has no turns")
            return []
        kept = turns[-opts.context_turns :] if opts.context_turns else turns
        return [Seq2SeqExample(f" {opts.separator} ".join(kept), None, id=conversation, path=path, line=line)]
    if len(turns) < 2:
        message = f"conversation {conversation!r} has {len(turns)} turn(s); a pair needs a turn and a reply"
        bad.report(line, "conversations without a reply", message)
        return []
    return dialogue_pairs(
        turns,
        conversation=conversation,
        context_turns=opts.context_turns,
        separator=opts.separator,
        path=path,
        line=line,
    )


# --- JSON lines ---------------------------------------------------------------------------------------


def _read_jsonl(lines: list[str], opts: _Options, path: str, bad: BadLines) -> list[Seq2SeqExample]:
    """One object a line, a pair or (with ``"turns"``) a dialogue; blank lines are skipped anywhere."""
    examples: list[Seq2SeqExample] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = parse_json_record(line, number, bad)
        if record is None:
            continue
        if "turns" in record:
            examples += _json_dialogue(record, number, opts, path, bad)
        elif (example := _json_pair(record, number, opts, path, bad)) is not None:
            examples.append(example)
    return examples


def _json_pair(
    record: dict[str, Any], number: int, opts: _Options, path: str, bad: BadLines
) -> Seq2SeqExample | None:
    """The record of one JSON object, or None after reporting its first problem."""
    source = _json_source(record, opts.source_field, number, bad)
    if source is None:
        return None
    targets = None
    # unlabelled input may leave a target out, null, "" or [] (a placeholder in a test file)
    if opts.labelled or record.get(opts.target_field) not in (None, "", []):
        targets = _json_targets(record, opts.target_field, number, bad)
        if targets is None:
            return None
    control = record.get(opts.control_field) if opts.control_field else None
    if control is not None and not isinstance(control, str):
        found = type(control).__name__
        bad.report(number, "bad values", f"control {opts.control_field!r} must be a string, found {found}")
        return None
    given_id = next((record[key] for key in ("id", "paper_id") if record.get(key) is not None), None)
    record_id = None if given_id is None else str(given_id)
    return Seq2SeqExample(source, targets, control or None, record_id, path, number)


def _missing(record: dict[str, Any], key: str) -> str:
    return f"missing key {key!r} (keys found: {', '.join(record) or 'none'})"


def _json_source(record: dict[str, Any], key: str, number: int, bad: BadLines) -> str | None:
    """A string, or a list of sentences joined with one space (SciTLDR); None after reporting."""
    if key not in record:
        bad.report(number, "missing keys", _missing(record, key))
        return None
    value = record[key]
    if isinstance(value, list) and all(isinstance(sentence, str) for sentence in value):
        value = " ".join(value)
    if not isinstance(value, str):
        bad.report(number, "bad values", f"{key!r} must be a string or a list of strings")
        return None
    if not value.strip():
        bad.report(number, "empty sources", f"the source in {key!r} is empty")
        return None
    return value


def _json_targets(record: dict[str, Any], key: str, number: int, bad: BadLines) -> list[str] | None:
    """One reference (a string) or several (a list of strings); None after reporting."""
    if record.get(key) is None:
        found = _missing(record, key) if key not in record else f"{key!r} is null"
        bad.report(number, "missing targets", f"{found}; {_UNLABELLED_HINT}")
        return None
    value = record[key]
    references = [value] if isinstance(value, str) else value
    if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
        bad.report(number, "bad values", f"{key!r} must be a string or a non-empty list of strings")
        return None
    if not all(reference.strip() for reference in references):
        bad.report(number, "empty targets", f"{key!r} holds an empty reference")
        return None
    return list(references)


def _json_dialogue(
    record: dict[str, Any], number: int, opts: _Options, path: str, bad: BadLines
) -> list[Seq2SeqExample]:
    """``{"turns": [...], "id"?: ...}``; without an id the conversation is named by its line."""
    turns = record["turns"]
    given_id = record.get("id")
    conversation = f"{Path(path).stem}-{number}" if given_id is None else str(given_id)
    if not isinstance(turns, list) or not all(isinstance(turn, str) for turn in turns):
        bad.report(number, "bad values", '"turns" must be a list of strings')
        return []
    return _dialogue(turns, conversation, opts, (path, number), bad)


# --- TSV and CSV --------------------------------------------------------------------------------------


def _read_delimited(
    lines: list[str], delimiter: str, opts: _Options, path: str, bad: BadLines
) -> list[Seq2SeqExample]:
    """TSV split on TAB with no quoting (GLUE-style stray quotes stay text), CSV with standard quoting."""
    rows = _tsv_rows(lines) if delimiter == "\t" else _csv_rows(lines, delimiter, path)
    rows = _drop_blank_rows(rows, bad)
    if not rows:
        return []
    columns = _header_columns(rows[0], opts, path)
    if columns is None and (first := header_like(rows)) is not None:
        message = (
            f"the first row looks like a header ({first}) but names neither the source field"
            f" {opts.source_field!r} nor the target field {opts.target_field!r}: name them with"
            " --source-field and --target-field"
        )
        raise BadInputError(path, rows[0].line, message)
    if columns is None:
        if opts.control_field is not None:
            message = f"control field {opts.control_field!r} names a column, but the first row is no header"
            raise BadInputError(path, rows[0].line, message)
        where = f"source column {opts.source_column}, target column {opts.target_column}"
        columns = _Columns(opts.source_column, opts.target_column, None, where)
    else:
        rows = rows[1:]
    return [ex for row in rows if (ex := _row_example(row, columns, opts, path, bad)) is not None]


def _header_columns(head: _Row, opts: _Options, path: str) -> _Columns | None:
    """The columns a header row names, or None when the first row is data (it names neither field)."""
    names = [cell.strip() for cell in head.cells]
    if opts.source_field not in names and opts.target_field not in names:
        return None
    where = (path, head.line, names)
    source = _named(opts.source_field, "source", True, where)
    target = _named(opts.target_field, "target", opts.labelled, where)
    control = None if opts.control_field is None else _named(opts.control_field, "control", True, where)
    shown = f"header line {head.line}: source {opts.source_field!r} is column {source}"
    if target is not None:
        shown += f", target {opts.target_field!r} column {target}"
    return _Columns(source, target, control, shown)


def _named(name: str, role: str, required: bool, where: tuple[str, int, list[str]]) -> int | None:
    """The index of the header column called ``name``; None when it is absent and not ``required``."""
    path, line, names = where
    if names.count(name) > 1:
        raise BadInputError(path, line, f"the header names column {name!r} more than once")
    if name in names:
        return names.index(name)
    if not required:
        return None
    hint = f"; {_UNLABELLED_HINT}" if role == "target" else ""
    raise BadInputError(
        path, line, f"the header has no {role} column {name!r}; it has: {', '.join(names)}{hint}"
    )


def _row_example(
    row: _Row, columns: _Columns, opts: _Options, path: str, bad: BadLines
) -> Seq2SeqExample | None:
    """The record of one row, or None after reporting its first problem."""
    cells = row.cells
    required = [columns.source, columns.control]
    if opts.labelled:
        required.append(columns.target)
    needed = 1 + max(index for index in required if index is not None)
    if len(cells) < needed:
        message = f"found {len(cells)} field(s), need {needed} ({columns.shown})"
        if row.last > row.line:
            message += (
                f"; this record spans lines {row.line}-{row.last}, a stray '\"' may have opened a quote"
            )
        bad.report(row.line, "too few fields", message)
        return None
    source = cells[columns.source]
    if not source.strip():
        bad.report(row.line, "empty sources", f"the source (column {columns.source}) is empty")
        return None
    targets = None
    if columns.target is not None and columns.target < len(cells):
        target = cells[columns.target]
        if target.strip():
            targets = [target]
        elif opts.labelled:
            bad.report(row.line, "empty targets", f"the target (column {columns.target}) is empty")
            return None
    control = (cells[columns.control] or None) if columns.control is not None else None
    return Seq2SeqExample(source, targets, control, path=path, line=row.line)


# --- KdConv -------------------------------------------------------------------------------------------


def _read_kdconv(lines: list[str], opts: _Options, path: str, bad: BadLines) -> list[Seq2SeqExample]:
    """``[{"name", "messages": [{"message", "attrs"?}, ...]}, ...]``; conversation ids ``{stem}-{index}``."""
    stem = Path(path).stem
    examples: list[Seq2SeqExample] = []
    for index, (element, line) in enumerate(_json_array("\n".join(lines), path)):
        conversation = f"{stem}-{index}"  # counts skipped ones too, so ids do not shift after a bad one
        turns = _kdconv_turns(element, conversation, line, bad)
        if turns is not None:
            examples += _dialogue(turns, conversation, opts, (path, line), bad)
    return examples


def _kdconv_turns(element: Any, conversation: str, line: int, bad: BadLines) -> list[str] | None:
    messages = element.get("messages") if isinstance(element, dict) else None
    if not isinstance(messages, list):
        message = f'conversation {conversation!r}: expected an object with a "messages" list'
        bad.report(line, "bad conversations", message)
        return None
    turns = []
    for i, item in enumerate(messages):
        text = item.get("message") if isinstance(item, dict) else None
        if not isinstance(text, str):
            expected = 'must be {"message": "...", ...}'
            bad.report(line, "bad conversations", f"conversation {conversation!r}: messages[{i}] {expected}")
            return None
        turns.append(text)
    return turns


def _json_array(text: str, path: str) -> Iterator[tuple[Any, int]]:
    """The elements of a JSON array, each with the 1-based line it starts on.

    Decoded one element at a time so that a structurally bad element can be reported at its own line;
    invalid JSON raises at the decoder's line (the rest of the array cannot be found after it).
    """
    decoder = json.JSONDecoder()

    def line_at(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    pos = _JSON_SPACE.match(text, 0).end()
    if not text.strip():
        raise BadInputError(path, 0, "the file is empty: expected a JSON array of conversations")
    if not text.startswith("[", pos):
        raise BadInputError(path, line_at(pos), "expected a JSON array of conversations, starting with '['")
    pos = _JSON_SPACE.match(text, pos + 1).end()
    closed, line, counted = text.startswith("]", pos), 1, 0
    while not closed:
        try:
            element, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise BadInputError(
                path, err.lineno, f"not valid JSON ({err.msg} at column {err.colno})"
            ) from None
        except (RecursionError, ValueError) as err:  # nesting deeper than the stack, a huge integer
            raise BadInputError(path, line_at(pos), f"the conversation is {json_limit(err)}") from None
        line, counted = line + text.count("\n", counted, pos), pos  # counted on, not from the start
        yield element, line
        pos = _JSON_SPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _JSON_SPACE.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            closed = True
        else:
            raise BadInputError(
                path, line_at(pos), "not valid JSON (expected ',' or ']' after a conversation)"
            )
    rest = _JSON_SPACE.match(text, pos + 1).end()
    if rest < len(text):
        raise BadInputError(path, line_at(rest), "not valid JSON (more data after the closing ']')")
