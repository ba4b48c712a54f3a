"""Read token JSON lines: one object per line with a list of tokens and, when labelled, a list of tags.

Each bad record (not JSON, a missing key, tokens and tags of different lengths) is an error at its line.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bertkit.data.readers import TokenCorpus, finish_token_corpus, json_limit, read_lines
from bertkit.errors import BadInputError, BadLines
from bertkit.records import TokenExample

# a .json file holding one array of records, read as JSON lines
ARRAY_HINT = "; JSON lines are read here, one object a line: for a JSON array, `jq -c '.[]' FILE` writes them"


def parse_json_record(line: str, number: int, bad: BadLines) -> dict[str, Any] | None:
    """The JSON object on one line, or None (after reporting) when it is not one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        hint = ARRAY_HINT if number == 1 and line.lstrip().startswith("[") else ""
        bad.report(number, "bad JSON", f"not valid JSON ({err.msg} at column {err.colno}){hint}")
        return None
    except (RecursionError, ValueError) as err:
        bad.report(number, "bad JSON", f"not valid JSON ({json_limit(err)})")
        return None
    if not isinstance(record, dict):
        hint = ARRAY_HINT if isinstance(record, list) else ""
        bad.report(number, "bad JSON", f"expected a JSON object, found {type(record).__name__}{hint}")
        return None
    return record


def _string_list(record: dict[str, Any], key: str, number: int, bad: BadLines) -> list[str] | None:
    value = record.get(key)
    if value is None:
        bad.report(number, "missing keys", f"missing key {key!r} (keys found: {', '.join(record) or 'none'})")
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        bad.report(number, "bad values", f"{key!r} must be a list of strings")
        return None
    return value


def _example(
    record: dict[str, Any], number: int, keys: tuple[str, str | None], path: str, bad: BadLines
) -> TokenExample | None:
    tokens_key, tags_key = keys
    tokens = _string_list(record, tokens_key, number, bad)
    if tokens is None:
        return None
    tags = _string_list(record, tags_key, number, bad) if tags_key else None
    if tags_key and tags is None:
        return None
    if tags is not None and len(tags) != len(tokens):
        bad.report(number, "length mismatches", f"{len(tokens)} tokens but {len(tags)} tags")
        return None
    return TokenExample(tokens=tokens, tags=tags, path=path, lines=[number] * len(tokens), record_line=number)


def read_jsonl(
    path: str | Path,
    *,
    tokens_key: str = "tokens",
    tags_key: str | None = "tags",
    scheme: str = "auto",
    labels: Collection[str] | None = None,
    on_bad_line: str = "error",
) -> TokenCorpus:
    """Read ``{"tokens": [...], "tags": [...]}`` lines (key names configurable) into a ``TokenCorpus``.

    The file is unlabelled (``tags=None``) when ``tags_key`` is None (any tags are then ignored) or its
    first record lacks that key (a later record with tags is then a bad line); otherwise every record
    needs it. Blank lines are skipped.
    Tags are checked as in ``read_conll``; with ``on_bad_line="warn"`` a bad record is skipped and counted.
    """
    path = str(path)
    bad = BadLines(path, on_bad_line)
    examples: list[TokenExample] = []
    keys: tuple[str, str | None] | None = None
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        record = parse_json_record(line, number, bad)
        if record is None:
            continue
        if keys is None:
            keys = (tokens_key, tags_key if tags_key in record else None)
        elif tags_key is not None and keys[1] is None and tags_key in record:
            # Ignoring these tags would silently train on an unlabelled file: say so instead.
            message = f"this record has {tags_key!r} but the first record has none; give all or none"
            bad.report(number, "mixed records", message)
            continue
        example = _example(record, number, keys, path, bad)
        if example is not None:
            examples.append(example)
    if not examples:
        raise BadInputError(path, 0, "no records found: the file has no valid JSON lines")
    return finish_token_corpus(examples, path, scheme, labels, bad)
