"""Errors about bad input, raised where the bad input is seen, naming the file and the line.

``BadLines`` applies the user's ``--on-bad-line`` choice: stop at the first malformed line (the default),
or count each one and report the counts as a warning at the end of the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ON_BAD_LINE = ("error", "warn")


class BertkitError(Exception):
    """Base of the errors bertkit raises for a user's mistake (the CLI prints them without a traceback)."""


class BadInputError(BertkitError, ValueError):
    """A malformed input file: ``path:line: what is wrong``."""

    def __init__(self, path: str, line: int, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def require_records(records: list, path: str) -> list:
    """``records`` when there are any; else BadInputError naming the file (nothing to train or score)."""
    if not records:
        raise BadInputError(path, 0, "no records: the file is empty or every record in it was skipped")
    return records


@dataclass
class BadLines:
    """Raises or counts malformed lines of one file, per the user's policy."""

    path: str
    policy: str = "error"
    counts: Counter = field(default_factory=Counter)
    first: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in ON_BAD_LINE:
            raise BertkitError(f"on_bad_line must be one of {ON_BAD_LINE}, got {self.policy!r}")

    def report(self, line: int, kind: str, message: str) -> None:
        """Raise for ``policy='error'``; otherwise count the problem under ``kind``."""
        if self.policy == "error":
            raise BadInputError(self.path, line, message + " (use --on-bad-line warn to count and go on)")
        self.counts[kind] += 1
        self.first.setdefault(kind, line)

    def warn_summary(self) -> None:
        """Log one warning line per kind of problem met (nothing when the file was clean)."""
        for kind, n in self.counts.items():
            log.warning("%s: %d line(s) with %s (first at line %d)", self.path, n, kind, self.first[kind])


class InputLimitError(BertkitError):
    """A prediction call beyond a configured bound (too many inputs, or an input too long)."""

    def __init__(self, limit: str, message: str):
        self.limit = limit
        super().__init__(message)
