"""Prediction files, each written atomically: CoNLL with a tag column appended, and JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bertkit.atomic import atomic_path
from bertkit.data.readers import read_lines


def write_conll_with_tags(src: str, out: str, tag_of_line: dict[int, str]) -> None:
    """The input file line for line, with ``tag_of_line[n]`` appended to line ``n`` (1-based)."""
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as dst:
        for number, line in enumerate(read_lines(src), start=1):
            if number in tag_of_line:
                sep = "\t" if "\t" in line else " "
                line = f"{line}{sep}{tag_of_line[number]}"
            dst.write(line + "\n")


def write_json_lines(out: str, rows: Iterable[dict[str, Any]]) -> None:
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as dst:
        for row in rows:
            dst.write(json.dumps(row, ensure_ascii=False) + "\n")
