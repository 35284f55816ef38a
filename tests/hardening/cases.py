"""The bad inputs the suite feeds the CLI and the served pages, and what each got back (printed at the end of
the test run, one line per input: issue 16 asks to see them)."""
from __future__ import annotations

REPORT: list[tuple[str, str, str]] = []  # (where, input, message)


def record(where: str, given: str, message: str) -> None:
    REPORT.append((where, given, " ".join(message.split())[:160]))
