"""Predictions on a CoNLL file: the same file, line for line, with a predicted-tag column appended.

Written as predictions arrive (records come in file order), under a temporary name that is renamed
into place only when the whole file is written.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bertkit.atomic import atomic_path
from bertkit.data.readers import read_lines
from bertkit.data.readers.conll import is_docstart
from bertkit.records import TokenExample
from bertkit.tasks.ner.decoding import WordTags


class ConllTagWriter:
    def __init__(self, src: str, out: str):
        self.src, self.out = src, out
        self._stack = contextlib.ExitStack()
        self._next = 1  # the next source line to copy (1-based)

    def __enter__(self) -> ConllTagWriter:
        self._lines = read_lines(self.src)
        tmp = self._stack.enter_context(atomic_path(self.out))
        self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))
        return self

    def write(self, record: TokenExample, prediction: WordTags) -> None:
        tags = dict(zip(record.lines, prediction.tags))
        self._copy_until(max(record.lines, default=self._next - 1), tags)

    def _copy_until(self, last: int, tags: dict[int, str]) -> None:
        for number in range(self._next, last + 1):
            line = self._lines[number - 1]
            # -DOCSTART- lines get an O too, so that every non-blank line has the same columns (conlleval
            # refuses a file whose lines differ)
            tag = tags.get(number, "O" if is_docstart(line) else None)
            if tag is not None:
                line = line.rstrip(" \t")
                line = f"{line}{chr(9) if chr(9) in line else ' '}{tag}"
            self._file.write(line + "\n")
        self._next = max(self._next, last + 1)

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self._copy_until(len(self._lines), {})
        self._stack.__exit__(*exc)
