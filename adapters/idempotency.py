"""Idempotency: a command id is recorded once, and a repeat answers as the first did.

Each recorded command leaves a receipt (its id, a fingerprint of its content, the
ledger versions its facts took) in the same transaction as the facts, so two
processes racing with one command id cannot both record it. A repeat with the same
content is answered with the facts the first recording stored; the same id with
other content is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeledger.domain.commands import Command
from homeledger.domain.errors import CommandIdReusedError


@dataclass(frozen=True)
class Receipt:
    """What one command recorded: its fingerprint and the ledger versions it took."""

    command_id: str
    fingerprint: str
    first_version: int
    last_version: int


def check_same(command: Command, fingerprint: str) -> None:
    """Refuse a command id already used for a command with another fingerprint."""
    if command.fingerprint() != fingerprint:
        raise CommandIdReusedError(
            f"command id {command.command_id!r} was already used for a different command"
        )
