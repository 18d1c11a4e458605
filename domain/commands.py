"""Commands: what operators ask the ledger to record, validated before any rule runs.

Field names follow the CLI flags in snake_case, so one JSON Lines import line is one
command (docs/reference.md); the positional ids are `id`.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from homeledger.domain.money import parse_amount
from homeledger.domain.values import (
    Basis,
    CountryCode,
    CurrencyCode,
    InitiativeId,
    LedgerDate,
    OptionalText,
    Text,
    Token,
    Units,
    Year,
)

Amount = Annotated[Decimal, BeforeValidator(parse_amount)]


class Command(BaseModel):
    """Base of all commands. `command_id` makes a command idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    NAME: ClassVar[str] = ""
    command_id: Token | None = None

    def allocation_ids(self) -> tuple[str, ...]:
        """The allocations the command refers to by id (read ahead before deciding)."""
        return ()

    def fingerprint(self) -> str:
        """A digest of what the command asks, without its id: same id, same content."""
        body = self.model_dump(mode="json", exclude={"command_id"})
        text = json.dumps({"command": self.NAME, **body}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class MoneyCommand(Command):
    """A command that moves money: an explicit currency must be the partnership's."""

    currency: CurrencyCode | None = None


class EstablishPartnership(Command):
    NAME: ClassVar[str] = "init"
    donor: Text
    beneficiary: Text
    rate: Amount
    currency: CurrencyCode
    basis: Basis
    start: LedgerDate


class AcquireUnits(Command):
    NAME: ClassVar[str] = "units.acquire"
    country: CountryCode
    units: Units
    on: LedgerDate
    ref: OptionalText = ""


class DisposeUnits(AcquireUnits):
    NAME: ClassVar[str] = "units.dispose"


class PledgeDonation(Command):
    NAME: ClassVar[str] = "pledge"
    year: Year


class ReceiveDonation(MoneyCommand):
    NAME: ClassVar[str] = "receive"
    year: Year
    amount: Amount
    on: LedgerDate


class RegisterInitiative(Command):
    NAME: ClassVar[str] = "initiative.register"
    id: InitiativeId
    name: Text
    country: CountryCode
    programme: Text


class CloseInitiative(Command):
    NAME: ClassVar[str] = "initiative.close"
    id: InitiativeId
    on: LedgerDate
    reason: OptionalText = ""


class AllocateFunds(MoneyCommand):
    NAME: ClassVar[str] = "allocate"
    initiative: InitiativeId
    year: Year
    amount: Amount
    allocation_id: Token | None = None

    def allocation_ids(self) -> tuple[str, ...]:
        return (self.allocation_id,) if self.allocation_id else ()


class ReleaseAllocation(MoneyCommand):
    NAME: ClassVar[str] = "release"
    id: Token
    amount: Amount
    reason: Text

    def allocation_ids(self) -> tuple[str, ...]:
        return (self.id,)


class DisburseFunds(MoneyCommand):
    NAME: ClassVar[str] = "disburse"
    initiative: InitiativeId
    amount: Amount
    on: LedgerDate


class RecordMilestone(Command):
    NAME: ClassVar[str] = "milestone"
    initiative: InitiativeId
    name: Text
    on: LedgerDate
    evidence: OptionalText = ""


class SealLedger(Command):
    """Recorded by `seal`: the adapter supplies the position and digest it computed."""

    NAME: ClassVar[str] = "seal"
    position: int
    digest: str
    signature: str = ""  # Ed25519 over the digest (adapters/seals.py), when a key signs
    key_id: str = ""


COMMAND_CLASSES: dict[str, type[Command]] = {
    cls.NAME: cls
    for cls in (
        EstablishPartnership,
        AcquireUnits,
        DisposeUnits,
        PledgeDonation,
        ReceiveDonation,
        RegisterInitiative,
        CloseInitiative,
        AllocateFunds,
        ReleaseAllocation,
        DisburseFunds,
        RecordMilestone,
    )
}


class UnknownCommandError(ValueError):
    """An import line naming a command the ledger does not have."""


def parse_command(fields: dict[str, Any]) -> Command:
    """Build a command from one import line: {"command": "allocate", ...}."""
    body = dict(fields)
    name = body.pop("command", None)
    if not isinstance(name, str):
        raise UnknownCommandError('a command line needs a "command" field naming the command')
    try:
        cls = COMMAND_CLASSES[name]
    except KeyError:
        known = ", ".join(sorted(COMMAND_CLASSES))
        raise UnknownCommandError(f"unknown command {name[:60]!r} (known: {known})") from None
    return cls.model_validate(body)
