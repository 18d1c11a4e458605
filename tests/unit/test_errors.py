"""Errors to exit codes: an unforeseen failure is one line and never the finding code."""

from __future__ import annotations

from homeledger.cli.errors import FINDING, INTERNAL, classify


def test_an_unforeseen_failure_is_one_line_and_not_the_finding_code() -> None:
    code, message = classify(RuntimeError("boom\nsecond line"))
    assert (code, message) == (INTERNAL, "internal error: RuntimeError: boom")
    assert INTERNAL != FINDING
