"""Idempotency: a command id is recorded once, and a repeat answers as the first did.

Each recorded command leaves a receipt (its id, a fingerprint of its content, the
ledger versions its facts took) in the same transaction as the facts, so two
processes racing with one command id cannot both record it. A repeat with the same
content is answered with the facts the first recording stored; the same id with
other content is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from homeledger.adapters.hash_chain import canonical_json
from homeledger.domain.commands import Command
from homeledger.domain.errors import CommandIdReusedError


@dataclass(frozen=True)
class Receipt:
    """What one command recorded: its fingerprint and the ledger versions it took."""

    command_id: str
    fingerprint: str
    first_version: int
    last_version: int


@dataclass(frozen=True)
class Fingerprints:
    """How a receipt fingerprints its command. A plain SHA-256 of a guessable command
    ("pledge --year 2022", an allocation of a round amount) can be confirmed by anyone
    who reads the receipts table, so in an encrypted store it is keyed: an HMAC under
    a key derived from the cipher key, which the database does not hold. Receipts
    written before (plain) are still recognised."""

    key: bytes | None = None

    def of(self, command: Command) -> str:
        plain = plain_fingerprint(command)
        if self.key is None:
            return plain
        return hmac.new(self.key, plain.encode(), hashlib.sha256).hexdigest()

    def check_same(self, command: Command, fingerprint: str) -> None:
        """Refuse a command id already used for a command with another fingerprint."""
        if fingerprint not in (self.of(command), plain_fingerprint(command)):
            raise CommandIdReusedError(
                f"command id {command.command_id!r} was already used for a different command"
            )


def plain_fingerprint(command: Command) -> str:
    """`command.fingerprint()`, the same digest of the same bytes, through the one
    canonical encoder (`hash_chain.canonical_json`, faster than the domain's own)."""
    return hashlib.sha256(canonical_json(command.fingerprint_fields())).hexdigest()


def fingerprint_key(cipher_key: str) -> bytes:
    """The receipts' fingerprint key, derived from the store's cipher key."""
    return hmac.new(b"homeledger receipt fingerprints v1", cipher_key.encode(),
                    hashlib.sha256).digest()  # fmt: skip
