"""The facts of the ledger (SPEC section 1). Names and wire fields are the contract.

Each event is a frozen pydantic model of its `data` fields. Metadata (ids, times,
actor, hash chain) lives in the envelope the adapters build around it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from homeledger.domain.money import Money, SignedMoney
from homeledger.domain.values import (
    Basis,
    CountryCode,
    CurrencyCode,
    InitiativeId,
    LedgerDate,
    OptionalText,
    Text,
    Token,
    Year,
)

PARTNERSHIP_SCOPE = "partnership"


class DomainEvent(BaseModel):
    """Base of every fact. Subclasses name their type and schema version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    def scope(self) -> str:
        """The last NATS subject token: initiative, year, country or 'partnership'."""
        return PARTNERSHIP_SCOPE

    def business_date(self, recorded_on: date) -> date:
        """The business date; facts without one of their own take the recording date."""
        return recorded_on


class PartnershipEstablished(DomainEvent):
    TYPE: ClassVar[str] = "PartnershipEstablished"
    donor: Text
    beneficiary: Text
    rate: Money
    currency: CurrencyCode
    basis: Basis
    start_date: LedgerDate

    def business_date(self, recorded_on: date) -> date:
        return self.start_date


class UnitsAcquired(DomainEvent):
    TYPE: ClassVar[str] = "UnitsAcquired"
    country: CountryCode
    units: Annotated[int, Field(strict=True, gt=0)]
    effective_date: LedgerDate
    reference: OptionalText = ""

    def scope(self) -> str:
        return self.country

    def business_date(self, recorded_on: date) -> date:
        return self.effective_date


class UnitsDisposed(UnitsAcquired):
    TYPE: ClassVar[str] = "UnitsDisposed"


class DonationPledged(DomainEvent):
    TYPE: ClassVar[str] = "DonationPledged"
    year: Year
    basis: Basis
    unit_basis: int
    rate: Money
    amount: Money
    delta: SignedMoney
    currency: CurrencyCode

    def scope(self) -> str:
        return str(self.year)


class DonationReceived(DomainEvent):
    TYPE: ClassVar[str] = "DonationReceived"
    year: Year
    amount: Money
    currency: CurrencyCode
    received_on: LedgerDate

    def scope(self) -> str:
        return str(self.year)

    def business_date(self, recorded_on: date) -> date:
        return self.received_on


class InitiativeRegistered(DomainEvent):
    TYPE: ClassVar[str] = "InitiativeRegistered"
    initiative: InitiativeId
    name: Text
    country: CountryCode
    programme: Text

    def scope(self) -> str:
        return self.initiative


class FundsAllocated(DomainEvent):
    TYPE: ClassVar[str] = "FundsAllocated"
    allocation_id: Token
    initiative: InitiativeId
    year: Year
    amount: Money
    currency: CurrencyCode

    def scope(self) -> str:
        return self.initiative


class AllocationReleased(DomainEvent):
    TYPE: ClassVar[str] = "AllocationReleased"
    allocation_id: Token
    initiative: InitiativeId
    year: Year
    amount: Money
    currency: CurrencyCode
    reason: Text

    def scope(self) -> str:
        return self.initiative


class FundsDisbursed(DomainEvent):
    TYPE: ClassVar[str] = "FundsDisbursed"
    initiative: InitiativeId
    amount: Money
    currency: CurrencyCode
    disbursed_on: LedgerDate

    def scope(self) -> str:
        return self.initiative

    def business_date(self, recorded_on: date) -> date:
        return self.disbursed_on


class MilestoneReached(DomainEvent):
    TYPE: ClassVar[str] = "MilestoneReached"
    initiative: InitiativeId
    milestone: Text
    reached_on: LedgerDate
    evidence: OptionalText = ""

    def scope(self) -> str:
        return self.initiative

    def business_date(self, recorded_on: date) -> date:
        return self.reached_on


class InitiativeClosed(DomainEvent):
    TYPE: ClassVar[str] = "InitiativeClosed"
    initiative: InitiativeId
    closed_on: LedgerDate
    reason: OptionalText = ""

    def scope(self) -> str:
        return self.initiative

    def business_date(self, recorded_on: date) -> date:
        return self.closed_on


class LedgerSealed(DomainEvent):
    TYPE: ClassVar[str] = "LedgerSealed"
    position: int
    digest: str


EVENT_CLASSES: dict[str, type[DomainEvent]] = {
    cls.TYPE: cls
    for cls in (
        PartnershipEstablished,
        UnitsAcquired,
        UnitsDisposed,
        DonationPledged,
        DonationReceived,
        InitiativeRegistered,
        FundsAllocated,
        AllocationReleased,
        FundsDisbursed,
        MilestoneReached,
        InitiativeClosed,
        LedgerSealed,
    )
}

# Every schema version of every type's `data` ever recorded: (type, version) -> its
# model. A version bump keeps the old model here (under its old number) next to the
# new class, so that the published JSON Schema still accepts the stored facts of every
# version (their envelopes are published as recorded: the hash covers them).
EVENT_MODELS: dict[tuple[str, int], type[BaseModel]] = {
    (cls.TYPE, cls.SCHEMA_VERSION): cls for cls in EVENT_CLASSES.values()
}


def event_versions(event_type: str) -> dict[int, type[BaseModel]]:
    """Each known schema version of a type's `data` and its model, oldest first."""
    cls = EVENT_CLASSES[event_type]
    versions = {v: model for (t, v), model in EVENT_MODELS.items() if t == event_type}
    versions[cls.SCHEMA_VERSION] = cls
    return dict(sorted(versions.items()))


# Upcasters turn the stored `data` of (type, version) into version + 1. A change of
# meaning gets a new SCHEMA_VERSION on the class and one entry here; stored facts are
# never rewritten, they are upcast when read.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UnknownEventTypeError(ValueError):
    """A stored or received fact whose type this code does not know."""


def event_from_data(event_type: str, schema_version: int, data: dict[str, Any]) -> DomainEvent:
    """Rebuild a fact from its wire `data`, upcasting older schema versions first."""
    try:
        cls = EVENT_CLASSES[event_type]
    except KeyError:
        raise UnknownEventTypeError(f"unknown event type {event_type!r}") from None
    version = schema_version
    while version < cls.SCHEMA_VERSION:
        data = UPCASTERS[(event_type, version)](dict(data))
        version += 1
    if version != cls.SCHEMA_VERSION:
        raise UnknownEventTypeError(
            f"{event_type} schema version {schema_version} is newer than this code knows"
        )
    return cls.model_validate(data)


def event_data(event: DomainEvent) -> dict[str, Any]:
    """The wire `data` of a fact: JSON-ready, money as two-decimal strings."""
    return event.model_dump(mode="json")
