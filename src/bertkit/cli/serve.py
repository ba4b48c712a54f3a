"""``bertkit serve``: placeholder while it is being written; it registers no command yet."""

from __future__ import annotations

import argparse


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    return None
