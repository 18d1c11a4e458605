"""Commands: what operators ask the ledger to record, validated before any rule runs.

Field names follow the CLI flags in snake_case, so one JSON Lines import line is one
command (docs/reference.md); the positional ids are `id`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from homeledger.domain.events import EVENT_ID_RE, DomainEvent
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
        """A digest of what the command asks, without its id: same id, same content.

        An effective date left to its default is not part of it, so a command recorded
        before `--on` existed has the fingerprint it had then, and a repeat on another
        day is still the same command."""
        text = json.dumps(self.fingerprint_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def fingerprint_fields(self) -> dict[str, Any]:
        """What the fingerprint digests (its JSON, keys sorted, ASCII, no spaces)."""
        body = self.model_dump(mode="json", exclude={"command_id"})
        if "on" in body and body["on"] is None:
            del body["on"]
        return {"command": self.NAME, **body}

    def on_or(self, today: date) -> date:
        """The effective date the command asks for (`on`), else `today`."""
        on = self.__dict__.get("on")
        return on if isinstance(on, date) else today


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
    on: LedgerDate | None = None


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
    on: LedgerDate | None = None


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
    on: LedgerDate | None = None

    def allocation_ids(self) -> tuple[str, ...]:
        return (self.allocation_id,) if self.allocation_id else ()


class ReleaseAllocation(MoneyCommand):
    NAME: ClassVar[str] = "release"
    id: Token
    amount: Amount
    reason: Text
    on: LedgerDate | None = None

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


def _fact_ref(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a position or an event id")
    text = value.strip().lower()
    if re.fullmatch(r"[0-9]{1,18}", text) and int(text) > 0:
        return str(int(text))
    if EVENT_ID_RE.fullmatch(text):
        return text
    raise ValueError(f"{value[:70]!r} is not a position (1, 2, ...) or an event id (a UUID)")


FactRef = Annotated[str, BeforeValidator(_fact_ref), AfterValidator(str)]


class ReversalTarget(BaseModel):
    """The fact a reversal names, as the store holds it: looked up by the application,
    never taken from the operator (the ledger checks it against what it recorded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    type: str
    position: int
    fact: DomainEvent


class ReverseFact(Command):
    """Reverse the fact at a position (or with an event id).

    `target` is the stored fact, filled in by the application; it is not part of what
    the operator asks (nor of the fingerprint) and cannot be given in a command line.
    """

    NAME: ClassVar[str] = "reverse"
    id: FactRef
    reason: Text
    on: LedgerDate | None = None
    target: ReversalTarget | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_target_from_outside(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" in data:
            raise ValueError("the fact to reverse is named by 'id'; 'target' cannot be given")
        return data

    @property
    def position(self) -> int | None:
        return int(self.id) if self.id.isdigit() else None

    @property
    def event_id(self) -> str | None:
        return None if self.id.isdigit() else self.id


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
        ReverseFact,
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
