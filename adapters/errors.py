"""Failures of the infrastructure, each with one meaning and one line of text.

The CLI maps each to its exit code: a setting that cannot be used is bad input (2),
a store held by another writer a refusal (3), an unreachable or unreadable store or
NATS server 4.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot be used as given (a bad store URL, say)."""


class StoreUnavailableError(Exception):
    """The store cannot be reached, opened or read (exit 4)."""


class StoreBusyError(Exception):
    """Another writer held the store past the lock timeout; retry later (exit 3)."""


class LedgerIntegrityError(Exception):
    """A stored fact does not continue the chain or breaks a rule: the ledger decides
    nothing on it (exit 1, as a verification finding; `verify` names the position)."""


class NatsUnavailableError(Exception):
    """NATS cannot be reached, refused us, or failed (exit 4). The message is one line."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
