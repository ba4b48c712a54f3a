"""Read raw text, one text per line, and cut it into words the way BERT's basic tokenizer does.

The words keep their character offsets, so predictions over them can be reported as spans of the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Set
from pathlib import Path

from bertkit.data.readers import TokenCorpus, finish_token_corpus, read_lines
from bertkit.errors import BadInputError, BadLines
from bertkit.records import TokenExample

# The code-point ranges of BERT's tokenization._is_chinese_char (CJK ideographs, not all of CJK).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


_CJK_CHAR = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES) + "]")


def is_cjk(char: str) -> bool:
    cp = ord(char)
    # most text is below the first range: answered without the loop (the reader's hot path)
    return cp >= 0x3400 and any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    # As in BERT: every ASCII non-alphanumeric printable counts ("$", "^", "`"), not only category P*.
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_separator(char: str) -> bool:
    # BERT deletes control characters (joining their neighbours); ending the word keeps offsets simple.
    return char.isspace() or unicodedata.category(char) in ("Zs", "Cc", "Cf")


def split_words(text: str, cuts: Set[int] = frozenset()) -> list[tuple[str, int, int]]:
    """Cut ``text`` into ``(word, start, end)`` with ``text[start:end] == word``, like BERT's basic tokenizer.

    Whitespace and control characters separate words; each punctuation character and each CJK ideograph
    is a word of its own (so Chinese comes out one character per word); other runs are words. A word
    is also cut at each offset in ``cuts`` (entity edges inside words: ``CPL|2011``, ``German|s``).
    """
    words: list[tuple[str, int, int]] = []
    start = None
    for i, char in enumerate(text):
        alone = _is_punctuation(char) or is_cjk(char)
        if start is not None and (alone or _is_separator(char) or i in cuts):
            words.append((text[start:i], start, i))
            start = None
        if alone:
            words.append((char, i, i + 1))
        elif start is None and not _is_separator(char):
            start = i
    if start is not None:
        words.append((text[start:], start, len(text)))
    return words


def tagged_words(text: str, cuts: Set[int] = frozenset()) -> list[tuple[str, int, int]]:
    """The words NER gives a tag each: ``split_words``'s, except that a text with Chinese in it is cut
    into characters, Latin letters and digits too.

    Chinese NER tags every character (the convention of MSRA, Weibo, CLUENER), and its entities begin
    and end inside Latin runs (``CPL`` in ``CPL2011``, ``ac米兰`` in ``vsac米兰``). Cutting such runs only at
    gold edges would train on words that prediction over raw text never sees.
    """
    if _CJK_CHAR.search(text):
        return [(char, i, i + 1) for i, char in enumerate(text) if not _is_separator(char)]
    return split_words(text, cuts)


def text_example(text: str, path: str = "", line: int = 0, cuts: Set[int] = frozenset()) -> TokenExample:
    """An unlabelled example for one text, its words cut by ``tagged_words`` (and at ``cuts``)."""
    words = tagged_words(text, cuts)
    return TokenExample(
        tokens=[w for w, _, _ in words],
        path=path,
        lines=[line] * len(words),
        text=text,
        offsets=[(s, e) for _, s, e in words],
        record_line=line,
    )


def read_text(
    path: str | Path,
    *,
    scheme: str = "auto",
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
) -> TokenCorpus:
    """Read one text per line into unlabelled examples (``tags=None``) with text and offsets.

    Every line is a record, an empty one too: it gives an example with no tokens, which ``predict``
    still echoes so the output lines up with the input. ``scheme``, ``labels`` and ``on_bad_line`` are
    accepted so every token reader takes the same options; text has no tags to check.
    """
    path = str(path)
    lines = read_lines(path)
    if not lines:
        raise BadInputError(path, 0, "no lines found: the file is empty")
    examples = [text_example(line, path, number) for number, line in enumerate(lines, 1)]
    return finish_token_corpus(examples, path, scheme, labels, BadLines(path, on_bad_line))
