"""Read tables of texts and labels (TSV, CSV, JSON lines) into ``TextExample`` records.

TSVs are split on TAB with no quote processing (GLUE files hold unbalanced ``"``); CSVs use standard
quoting. Every row keeps the 1-based physical line where it starts, so errors name ``file:line``.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.data.readers import read_lines, shown
from bertkit.data.readers.jsonl import parse_json_record
from bertkit.errors import BadInputError, BadLines
from bertkit.records import TextExample

log = logging.getLogger("bertkit.data.readers")

LABEL_MODES = ("single", "multi", "regression")
JSON_SUFFIXES = (".jsonl", ".json")

Column = int | str
# For Python callers the same way out is read_table(..., require_labels=False).
_NO_LABELS_HINT = (
    "name the label column with --label-column, or, for a file without labels, use `bertkit predict`"
)
_MISSING = object()  # a JSON record without the key (a JSON null is a value, and a bad one)


# Column names that open the header rows of common data sets (GLUE, IMDB, AG News, Yelp, CNN/DailyMail,
# XSum, SAMSum, ...): one of them in an all-name first row is what tells a header from data.
# fmt: off
HEADER_NAMES = frozenset({
    "text", "texts", "sentence", "sentence1", "sentence2", "question", "question1", "question2",
    "answer", "answers", "context", "passage", "premise", "hypothesis", "label", "labels", "class",
    "category", "target", "targets", "source", "src", "tgt", "input", "inputs", "output", "outputs",
    "id", "idx", "index", "review", "sentiment", "polarity", "rating", "stars", "score", "title",
    "description", "content", "body", "document", "summary", "article", "highlights", "abstract",
    "tldr", "dialogue", "dialog", "response", "prompt", "completion", "translation", "reference",
    "headline", "comment", "tweet", "query", "intent", "topic", "en", "zh", "de", "fr", "es",
})
# fmt: on
_NAME = re.compile(r"[A-Za-z_#][A-Za-z0-9_#.\-]{0,29}( [A-Za-z0-9_#.\-]{1,30})?")  # one or two words
_SNIFF_ROWS = 1000


@dataclass
class _Row:
    """One record: its cells (a list of fields, or a JSON object) and its first and last physical line."""

    line: int
    cells: list[str] | dict[str, Any]
    last: int


@dataclass(frozen=True)
class _Columns:
    """Where text, pair and label sit in a row: indices for delimited files, keys for JSON lines.

    ``given`` holds each column as the user named it (``'#1 String'``, ``3``): messages quote that, not
    the index it resolved to.
    """

    text: Column
    pair: Column | None
    label: Column | None  # None: the file is read as unlabelled
    given: tuple[Column | None, Column | None, Column | None] = (None, None, None)

    def shown(self, role: str) -> str:
        spec = self.given[("text", "pair", "label").index(role)]
        return repr(spec) if spec is not None else repr(getattr(self, role))


@dataclass(frozen=True)
class _LabelRule:
    mode: str
    delimiter: str
    allowed: frozenset[str] | None


def _guess_delimiter(path: str, lines: list[str]) -> str | None:
    """TAB, comma, or None for JSON lines; by extension, else by what the first line holds."""
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    if suffix in JSON_SUFFIXES:
        return None
    first = lines[0] if lines else ""
    # A TAB is strong evidence; commas also occur inside ordinary text, so they only count without one.
    return "," if "," in first and "\t" not in first else "\t"


def detect_delimiter(path: str | Path) -> str | None:
    """The field delimiter ``read_table`` would use for ``path``: ``"\\t"``, ``","``, or None for JSON lines.

    ``.tsv``/``.tab`` -> TAB, ``.csv`` -> comma, ``.jsonl``/``.json`` -> None; any other name: comma when
    the first line has commas but no TAB, else TAB.
    """
    return _guess_delimiter(str(path), read_lines(path))


def _column_spec(column: Column | None, role: str) -> Column | None:
    """An int index for ints and strings of digits, a name for other strings."""
    if column is None or (isinstance(column, int) and not isinstance(column, bool)):
        return column
    if isinstance(column, str):
        # isascii: str.isdigit() also holds for digits int() rejects ("²").
        return int(column) if column.isascii() and column.isdigit() else column
    raise TypeError(f"{role}_column must be a column name or a 0-based index, got {column!r}")


def _tsv_rows(lines: list[str]) -> list[_Row]:
    return [_Row(number, line.split("\t"), number) for number, line in enumerate(lines, 1)]


def _csv_rows(lines: list[str], delimiter: str, path: str) -> list[_Row]:
    """Parse with CSV quoting, noting the physical line where each record starts and ends."""
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, strict=True)
    rows: list[_Row] = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        except csv.Error as err:
            # The parser cannot resync after this, so it stops the file whatever the policy.
            hint = "; a stray '\"' may open a quoted field (for GLUE-style files use a TAB delimiter)"
            raise BadInputError(path, start, f"malformed CSV ({err}){hint}") from None
        rows.append(_Row(start, cells, reader.line_num))


def header_like(rows: list[_Row]) -> str | None:
    """The first row, shown, when a file read without a header starts with what looks like one: every
    cell a name (one or two words of ASCII letters, digits and ``_#.-``), one of them a column name
    common in data sets, and none of them found again in its column in the next 1,000 rows (a label or
    text that is data recurs; a header's names do not). None when it looks like data."""
    if len(rows) < 2 or not isinstance(rows[0].cells, list):
        return None
    first = [cell.strip() for cell in rows[0].cells]
    if len(first) < 2 or not all(_NAME.fullmatch(cell) for cell in first):
        return None
    if not any(cell.lower() in HEADER_NAMES for cell in first):
        return None
    later = rows[1 : 1 + _SNIFF_ROWS]
    if any(
        i < len(row.cells) and row.cells[i].strip() == cell for row in later for i, cell in enumerate(first)
    ):
        return None
    return ", ".join(first)


def _is_blank(row: _Row) -> bool:
    return isinstance(row.cells, list) and not "".join(row.cells).strip()


def _drop_blank_rows(rows: list[_Row], bad: BadLines) -> list[_Row]:
    """Blank lines at the end are ignored; blank lines in the middle are bad lines."""
    while rows and _is_blank(rows[-1]):
        rows.pop()
    kept = []
    for row in rows:
        if _is_blank(row):
            bad.report(row.line, "blank lines", "blank line in the middle of the file")
        else:
            kept.append(row)
    return kept


def _check_widths(rows: list[_Row], width: int, source: str, bad: BadLines) -> list[_Row]:
    """Keep the rows with ``width`` fields; report the others."""
    kept = []
    for row in rows:
        if len(row.cells) == width:
            kept.append(row)
            continue
        message = f"expected {width} fields ({source}), found {len(row.cells)}"
        if row.last > row.line:
            message += (
                f"; this record spans lines {row.line}-{row.last}, a stray '\"' may have opened a quote"
            )
        bad.report(row.line, "wrong field counts", message)
    return kept


def _resolve(spec: Column, names: list[str] | None, width: int, path: str, line: int) -> int | None:
    """The index of a column given by name or index; None when it is not there."""
    if isinstance(spec, int):
        return spec if -width <= spec < width else None
    if names is None:
        raise BadInputError(path, line, f"column {spec!r} is given by name but the file has no header row")
    if names.count(spec) > 1:
        raise BadInputError(path, line, f"the header names column {spec!r} more than once; give its index")
    return names.index(spec) if spec in names else None


def _delimited_columns(
    specs: tuple[Column, Column | None, Column | None],
    names: list[str] | None,
    width: int,
    require_labels: bool,
    where: tuple[str, int],
) -> _Columns:
    """Turn column names/indices into indices, raising for columns the file does not have."""
    path, line = where
    indices = []
    for role, spec in zip(("text", "pair", "label"), specs):
        index = None if spec is None else _resolve(spec, names, width, path, line)
        if spec is not None and index is None and not (role == "label" and not require_labels):
            if names is not None and isinstance(spec, str):
                message = f"the file has no {role} column {spec!r}; the header has: {', '.join(names)}"
            else:
                message = f"{role} column {spec} is out of range: rows have {width} field(s)"
            if role == "label":
                message += f"; {_NO_LABELS_HINT}"
            raise BadInputError(path, line, message)
        indices.append(index)
    return _Columns(*indices, given=specs)


def _read_delimited(
    lines: list[str],
    delimiter: str,
    header: bool,
    specs: tuple,
    require_labels: bool,
    path: str,
    bad: BadLines,
    sniff: bool = False,
) -> tuple[list[_Row], _Columns]:
    """The rows and columns of a delimited file; ``sniff``: refuse a header-like first row when reading
    without a header that the caller did not ask for (``header="auto"`` with index columns)."""
    rows = _tsv_rows(lines) if delimiter == "\t" else _csv_rows(lines, delimiter, path)
    rows = _drop_blank_rows(rows, bad)
    if not rows:
        if header:
            raise BadInputError(path, 0, "the file is empty; expected a header row")
        return [], _Columns(0, None, None)
    names = None
    if sniff and not header and (first := header_like(rows)) is not None:
        message = (
            f"the first row looks like a header ({first}), but the columns are given by index, so it would"
            " be read as data: give the columns by name, or --header yes to skip the row, or --header no"
            " to read it as data"
        )
        raise BadInputError(path, rows[0].line, message)
    if header:
        head = rows.pop(0)
        names = [name.strip() for name in head.cells]
        width, source, line = len(names), "as in the header", head.line
    else:
        width, line = len(rows[0].cells), rows[0].line
        source = f"as in the first row, line {line}"
    columns = _delimited_columns(specs, names, width, require_labels, (path, line))
    return _check_widths(rows, width, source, bad), columns


def _read_json_lines(
    lines: list[str], specs: tuple, require_labels: bool, bad: BadLines
) -> tuple[list[_Row], _Columns]:
    """JSON objects, one a line; blank lines are skipped anywhere, as in the token JSON lines reader."""
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip() and (record := parse_json_record(line, number, bad)) is not None:
            rows.append(_Row(number, record, number))
    text, pair, label = (None if spec is None else str(spec) for spec in specs)
    # Like the token reader: the first record decides whether the file is labelled.
    if label is not None and not require_labels and rows and label not in rows[0].cells:
        label = None
    return rows, _Columns(text, pair, label, given=(text, pair, label))


def _cell(row: _Row, columns: _Columns, role: str, bad: BadLines) -> Any:
    """The value in the ``role`` column; ``_MISSING`` (after reporting) when a JSON record lacks the key."""
    try:
        return row.cells[getattr(columns, role)]
    except KeyError:
        keys = ", ".join(row.cells) or "none"
        hint = f"; {_NO_LABELS_HINT}" if role == "label" else ""
        bad.report(row.line, "missing keys", f"missing key {columns.shown(role)} (keys found: {keys}){hint}")
        return _MISSING


def _text(row: _Row, columns: _Columns, role: str, bad: BadLines, empty_ok: bool = False) -> str | None:
    """The stripped text of a cell; None (after reporting) when missing, not a string, or empty (unless
    ``empty_ok``: prediction input, where a row without text still gets its prediction)."""
    value = _cell(row, columns, role, bad)
    if value is _MISSING:
        return None
    what = "text" if role == "text" else "pair text"
    if not isinstance(value, str):
        bad.report(row.line, "bad values", f"{what} in column {columns.shown(role)} must be a string")
        return None
    if not value.strip() and not empty_ok:
        bad.report(row.line, "empty texts", f"empty {what} in column {columns.shown(role)}")
        return None
    return value.strip()


def _check_known(found: list[str], rule: _LabelRule, line: int, bad: BadLines) -> bool:
    unknown = [label for label in found if rule.allowed is not None and label not in rule.allowed]
    if unknown:
        expected = ", ".join(sorted(rule.allowed)[:20]) + (" ..." if len(rule.allowed) > 20 else "")
        bad.report(line, "unknown labels", f"unknown label {unknown[0]!r}; expected one of {expected}")
    return not unknown


def _label(value: Any, rule: _LabelRule, line: int, bad: BadLines) -> str | list[str] | float | None:
    """Parse one label cell by the label mode; None (after reporting) when it is bad."""
    if isinstance(value, float) and value.is_integer() and rule.mode != "regression":
        value = int(value)  # pandas writes the class 1 as 1.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # JSON numbers, e.g. {"label": 1}
    is_list = isinstance(value, list) and all(isinstance(item, str) for item in value)
    if not isinstance(value, str) and not (is_list and rule.mode == "multi"):
        message = f"label {shown(value)} must be a string" + " list" * (rule.mode == "multi")
        bad.report(line, "bad labels", message)
        return None
    if rule.mode == "regression":
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            bad.report(line, "bad labels", f"label {value.strip()!r} is not a number")
            return None
        return number
    if rule.mode == "multi":
        parts = value if is_list else value.split(rule.delimiter)
        found = sorted({part.strip() for part in parts if part.strip()})
        return found if _check_known(found, rule, line, bad) else None
    if not value.strip():
        bad.report(line, "bad labels", "empty label")
        return None
    return value.strip() if _check_known([value.strip()], rule, line, bad) else None


def _example(
    row: _Row, columns: _Columns, rule: _LabelRule, path: str, bad: BadLines, empty_ok: bool = False
) -> TextExample | None:
    """The record of one row, or None after reporting its first problem (one report per skipped row)."""
    text = _text(row, columns, "text", bad, empty_ok)
    if text is None:
        return None
    pair = None
    if columns.pair is not None and (pair := _text(row, columns, "pair", bad, empty_ok)) is None:
        return None
    label = None
    if columns.label is not None:
        value = _cell(row, columns, "label", bad)
        if value is _MISSING or (label := _label(value, rule, row.line, bad)) is None:
            return None
    return TextExample(text=text, pair=pair, label=label, path=path, line=row.line)


def read_table(
    path: str | Path,
    *,
    text_column: Column,
    pair_column: Column | None = None,
    label_column: Column | None = None,
    header: bool | str = "auto",
    delimiter: str | None = None,
    label_mode: str = "single",
    label_delimiter: str = ",",
    labels: list[str] | set[str] | None = None,
    on_bad_line: str = "error",
    require_labels: bool = True,
) -> list[TextExample]:
    """Read a TSV/CSV/JSON-lines table of texts (and pairs, and labels) into ``TextExample`` records.

    The format comes from ``delimiter`` (TAB: split on TAB, no quoting; anything else: CSV quoting) or
    else from ``detect_delimiter``. Columns are names, 0-based indices, or strings of digits (indices);
    in JSON lines they are keys. ``header="auto"`` expects a header row when any column is a name, and
    with index columns refuses a first row that looks like a header (``header_like``) rather than read it
    as data; ``header=False`` reads it as data.
    ``label_mode``: ``single`` (stripped string), ``multi`` (split on ``label_delimiter``, sorted unique
    list) or ``regression`` (float); labels outside ``labels`` are bad lines. A missing label column is
    an error unless ``require_labels=False`` (what ``bertkit predict`` passes), which reads the file as
    unlabelled (``label=None``). Messages name columns as given, not by the index they resolved to.
    Bad rows raise ``BadInputError`` at their line, or with ``on_bad_line="warn"`` are skipped and counted.
    """
    path = str(path)
    if label_mode not in LABEL_MODES:
        raise ValueError(f"unknown label_mode {label_mode!r}; expected one of {LABEL_MODES}")
    if header not in ("auto", True, False):
        raise ValueError(f"header must be 'auto', True or False, got {header!r}")
    bad = BadLines(path, on_bad_line)
    specs = tuple(
        _column_spec(c, r) for c, r in ((text_column, "text"), (pair_column, "pair"), (label_column, "label"))
    )
    sniff = header == "auto"
    if header == "auto":
        header = any(isinstance(spec, str) for spec in specs)
    lines = read_lines(path)
    delimiter = delimiter if delimiter is not None else _guess_delimiter(path, lines)
    if delimiter is None:
        rows, columns = _read_json_lines(lines, specs, require_labels, bad)
    else:
        rows, columns = _read_delimited(lines, delimiter, header, specs, require_labels, path, bad, sniff)
    rule = _LabelRule(label_mode, label_delimiter, None if labels is None else frozenset(labels))
    # unlabelled (prediction input): an empty text is predicted, not dropped (QQP's test file has empty
    # questions, and a GLUE submission needs a row for each)
    empty_ok = not require_labels
    examples = [ex for row in rows if (ex := _example(row, columns, rule, path, bad, empty_ok)) is not None]
    # Each skipped row was reported exactly once, so the counts are the number of rows skipped.
    log.info("%s: %d rows (%d skipped)", path, len(examples), sum(bad.counts.values()))
    bad.warn_summary()
    return examples
