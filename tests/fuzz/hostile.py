"""Hostile files for the reader fuzz tests: raw bytes, and plausible files whose records, lines and bytes
are broken on the way to disk (missing fields, wrong types, deep JSON, NUL bytes, bad UTF-8, mixed line
endings, BOMs, megabyte lines).

``hostile_file(lines)`` draws the bytes of a whole file from a strategy of plausible lines.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from hypothesis import strategies as st

# Bytes no UTF-8 file should hold, and the control bytes that split lines or fields.
BAD_BYTES = (
    b"\x00",
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3",  # a lead byte without its continuation
    b"\xe2\x82",  # a three-byte character cut short
    b"\xed\xa0\x80",  # a lone surrogate (U+D800) encoded as if it were a character
    b"\xed\xbf\xbf",
    b"\xc0\xaf",  # an overlong "/"
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\r",
    b"\n",
    b"\r\n",
    b"\t",
    b"\x1a",
    b"\x0c",
    b"\xc2\x85",  # U+0085 NEXT LINE, valid UTF-8 that str.splitlines would cut at
    b"\xe2\x80\xa8",  # U+2028 LINE SEPARATOR
)
BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF8 * 2, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Other encodings a user might hand over by mistake; "replace" keeps the draw total.
ENCODINGS = ("utf-16", "utf-16-le", "latin-1", "cp1252", "gb18030", "shift_jis")
ENDINGS = ("\n", "\r\n", "\r")
# Long lines are rare among the mutations (they cost time); the sizes reach the 1 MB of the brief.
LONG_SIZES = (3_000, 140_000, 1_000_000)
LONG_UNITS = ("a", "a ", "的", "[", "{", '"', "\t", ",", ". ", "B-PER ", "\\", "<e1>", " ")
DEPTHS = (100, 1_000, 10_000, 100_000)

TEXT = st.text(max_size=12)
# Now and then a lone surrogate (JSON may escape it, "\ud800"; a careless writer encodes it to bytes
# that are not UTF-8) or another character that trips readers up.
NASTY_TEXT = st.integers(0, 7).flatmap(
    lambda roll: (
        st.sampled_from(["\ud800", "a\udcff", "\x00", "\u2028", "\ufeff", "\x85"]) if roll == 0 else TEXT
    )
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: json.dumps writes them, json.loads reads them back
    NASTY_TEXT,
    st.sampled_from([2**64, -(2**63), 1e308, 5e-324]),  # too many digits: see huge_number
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=8,
)


def deep_json(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a": ' * depth + "1" + "}" * depth
    return "[" * depth  # never closed


def huge_number(kind: int) -> str:
    # More digits than Python's int() takes from a string (4300): json.loads raises a ValueError.
    return ("1" * 5000, "-" + "9" * 4301, "1e99999", "0." + "0" * 5000 + "1")[kind]


@st.composite
def mutated_json(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some keys dropped, some values replaced by any JSON, and some nested deeply."""
    roll = draw(st.integers(0, 19))
    if roll == 0:
        return draw(JSON_VALUES)
    if roll == 1:
        nested = draw(JSON_SCALARS)
        for _ in range(draw(st.sampled_from((2, 50, 200)))):  # deeper nesting comes as raw text
            nested = [nested]
        return nested
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            action = draw(st.sampled_from(("keep", "keep", "keep", "mutate", "mutate", "drop", "rename")))
            if action == "drop":
                continue
            if action == "rename":
                out[key.upper() + "_"] = item
                continue
            out[key] = draw(mutated_json(item)) if action == "mutate" else item
        if draw(st.integers(0, 9)) == 0:
            out[draw(TEXT)] = draw(JSON_VALUES)
        return out
    if isinstance(value, list) and value:
        items = list(value)
        at = draw(st.integers(0, len(items) - 1))
        action = draw(st.sampled_from(("mutate", "drop", "duplicate", "keep")))
        if action == "mutate":
            items[at] = draw(mutated_json(items[at]))
        elif action == "drop":
            del items[at]
        elif action == "duplicate":
            items.insert(at, items[at])
        return items
    return value


@st.composite
def json_line(draw: st.DrawFn, record: Any) -> str:
    """One JSON record on one line, sometimes mutated, sometimes with literal non-ASCII."""
    if draw(st.booleans()):
        record = draw(mutated_json(record))
    return json.dumps(record, ensure_ascii=draw(st.booleans()))


def _long_line(size: int, unit: str) -> str:
    return unit * (size // len(unit.encode()))


LINE_MUTATIONS = (
    "drop",
    "duplicate",
    "blank",
    "spaces",
    "cut",
    "nul",
    "junk",
    "json",
    "swap",
    "deep",
    "number",
    "cut",
    "junk",
    "long",
)


@st.composite
def mutated_lines(draw: st.DrawFn, lines: list[str]) -> list[str]:
    lines = list(lines)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(LINE_MUTATIONS))
        at = draw(st.integers(0, len(lines)))
        line = lines[at] if at < len(lines) else ""
        cut = draw(st.integers(0, len(line)))
        if kind == "drop" and at < len(lines):
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, line)
        elif kind == "blank":
            lines.insert(at, "")
        elif kind == "spaces":
            lines.insert(at, draw(st.sampled_from([" ", "\t", " \t ", "\u3000", "\x0b", "\xa0"])))
        elif kind == "cut":
            lines[at : at + 1] = [line[:cut]]
        elif kind in ("nul", "junk"):
            middle = "\x00" if kind == "nul" else draw(NASTY_TEXT)
            lines[at : at + 1] = [line[:cut] + middle + line[cut:]]
        elif kind == "json":
            lines.insert(at, json.dumps(draw(JSON_VALUES)))
        elif kind == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at % len(lines)], lines[other] = lines[other], lines[at % len(lines)]
        elif kind == "deep":
            depth, shape = draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "object", "open"]))
            lines.insert(at, line[:cut] + deep_json(depth, shape) + line[cut:])
        elif kind == "number":
            lines.insert(at, line[:cut] + huge_number(draw(st.integers(0, 3))) + line[cut:])
        elif kind == "long":
            unit = draw(st.sampled_from(LONG_UNITS))
            lines.insert(at, line[:cut] + _long_line(draw(st.sampled_from(LONG_SIZES)), unit) + line[cut:])
    return lines


@st.composite
def _joined(draw: st.DrawFn, lines: list[str]) -> str:
    """The lines with LF, CRLF, CR or a mix of them; a final line ending or not."""
    mode = draw(st.sampled_from(("lf", "lf", "crlf", "cr", "mixed")))
    if mode == "mixed":
        ends = [draw(st.sampled_from(ENDINGS)) for _ in lines]
    else:
        ends = [{"lf": "\n", "crlf": "\r\n", "cr": "\r"}[mode]] * len(lines)
    if ends and draw(st.integers(0, 4)) == 0:
        ends[-1] = ""
    return "".join(line + end for line, end in zip(lines, ends))


@st.composite
def _encoded(draw: st.DrawFn, text: str) -> bytes:
    """UTF-8 (lone surrogates written as the bytes a careless writer makes), or now and then another
    encoding; a BOM, stray bad bytes and a cut at any byte on top."""
    if draw(st.integers(0, 9)) == 0:
        data = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    else:
        data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.sampled_from(BOMS)) + data
    # Most files stay valid UTF-8: one bad byte stops the file at once, and the rest would go untested.
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 2)))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    if data and draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


@st.composite
def hostile_file(draw: st.DrawFn, lines: st.SearchStrategy[list[str]]) -> bytes:
    """A file of plausible ``lines``, broken: lines mutated, endings mixed, bytes made invalid."""
    text = draw(_joined(draw(mutated_lines(draw(lines)))))
    return draw(_encoded(text))


FRAGMENTS = (
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b":",
    b",",
    b" ",
    b'"text"',
    b'"tokens"',
    b'"data"',
    b"B-PER",
    b"O",
    b"-DOCSTART-",
    b"<e1>",
    b"</e2>",
    b"Comment:",
    b"1\t",
    b"null",
    b"\\u",
    b"\\ud800",
    b"*** START OF",
    b"\xe4\xb8\xad",  # 中
)
RAW_BYTES = st.one_of(
    st.binary(max_size=4096),
    st.lists(st.sampled_from(BAD_BYTES + FRAGMENTS), max_size=300).map(b"".join),
)
