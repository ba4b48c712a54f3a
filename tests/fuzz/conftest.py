"""The fuzz tests' tally: how many generated inputs each reader was given, and its slowest call.

The tally is printed at the end of the session and, when ``BERTKIT_FUZZ_REPORT`` names a file, written
there as JSON (the counts the README records).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_TALLY = pytest.StashKey["Tally"]()


@dataclass
class Tally:
    inputs: Counter = field(default_factory=Counter)  # generated files per reader
    calls: Counter = field(default_factory=Counter)  # reader calls (each file is read several ways)
    returned: Counter = field(default_factory=Counter)  # calls that returned records (the others raised)
    slowest: dict[str, float] = field(default_factory=dict)  # CPU seconds of the slowest call
    largest: dict[str, int] = field(default_factory=dict)  # bytes of the largest input

    def add_input(self, reader: str, size: int) -> None:
        self.inputs[reader] += 1
        self.largest[reader] = max(self.largest.get(reader, 0), size)

    def add_call(self, reader: str, seconds: float, returned: bool) -> None:
        self.calls[reader] += 1
        self.returned[reader] += returned
        self.slowest[reader] = max(self.slowest.get(reader, 0.0), seconds)

    def as_json(self) -> dict[str, dict[str, float]]:
        return {
            reader: {
                "inputs": self.inputs[reader],
                "calls": self.calls[reader],
                "calls_returning_records": self.returned[reader],
                "slowest_call_cpu_s": round(self.slowest.get(reader, 0.0), 3),
                "largest_input_bytes": self.largest.get(reader, 0),
            }
            for reader in sorted(self.inputs)
        }


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    return request.config.stash.setdefault(_TALLY, Tally())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    tally = config.stash.get(_TALLY, None)
    if tally is None:
        return
    report = tally.as_json()
    terminalreporter.write_sep("-", "fuzzed readers")
    for reader, row in report.items():
        terminalreporter.write_line(
            f"{reader:15} {row['inputs']:6d} inputs {row['calls']:7d} calls "
            f"({row['calls_returning_records']:6d} returned records), "
            f"slowest {row['slowest_call_cpu_s']:.3f} s CPU, largest input {row['largest_input_bytes']} bytes"
        )
    if os.environ.get("BERTKIT_FUZZ_REPORT"):
        Path(os.environ["BERTKIT_FUZZ_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
