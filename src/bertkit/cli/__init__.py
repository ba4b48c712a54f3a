"""The ``bertkit`` command: one module per verb, flags generated from the config dataclasses."""

from bertkit.cli.app import main

__all__ = ["main"]
