"""The facts of the ledger. Their names and wire fields are the contract (docs/reference.md).

Each event is a frozen pydantic model of its `data` fields. Metadata (ids, times,
actor, hash chain) lives in the envelope the adapters build around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any, ClassVar, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from homeledger.domain.money import Money, SignedMoney
from homeledger.domain.values import (
    RECORDED,
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
E = TypeVar("E", bound="DomainEvent")


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
    # Added fields (older seals have none): the signature of the digest and its key.
    signature: str = ""
    key_id: str = ""


class UnknownEventTypeError(ValueError):
    """A stored or received fact whose type this code does not know."""


# Upcasters turn the stored `data` of (type, version) into version + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    """Every fact type: its current class, the models of its older schema versions, and
    the upcasters between them. Everything that resolves a type by name goes through
    here: decoding stored and received facts, deciding new ones, the appliers of the
    ledger and the read models (keyed by type name), and the published JSON Schemas.

    A change of meaning gets a new SCHEMA_VERSION on the class, its old model kept
    under the old number, and one upcaster; stored facts are never rewritten, they are
    upcast when read. `bumped` makes such a change for the length of a `with` block
    (how the tests simulate one).
    """

    def __init__(self, classes: Iterable[type[DomainEvent]]) -> None:
        self._current: dict[str, type[DomainEvent]] = {cls.TYPE: cls for cls in classes}
        # (type, version) -> model of that version's `data`, every version ever recorded:
        # stored facts are published as recorded (the hash covers them), so the schema
        # must still accept each version.
        self._models: dict[tuple[str, int], type[BaseModel]] = {
            (cls.TYPE, cls.SCHEMA_VERSION): cls for cls in self._current.values()
        }
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def types(self) -> tuple[str, ...]:
        return tuple(self._current)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._current

    def current(self, event_type: str) -> type[DomainEvent]:
        try:
            return self._current[event_type]
        except KeyError:
            raise UnknownEventTypeError(f"unknown event type {event_type!r}") from None

    def versions(self, event_type: str) -> dict[int, type[BaseModel]]:
        """Each known schema version of a type's `data` and its model, oldest first."""
        cls = self.current(event_type)
        found = {v: model for (t, v), model in self._models.items() if t == event_type}
        found[cls.SCHEMA_VERSION] = cls
        return dict(sorted(found.items()))

    def new(self, cls: type[E], **fields: Any) -> E:
        """A new fact of `cls`'s type, of the type's current class and schema version."""
        return cast(E, self._current[cls.TYPE](**fields))

    def from_data(self, event_type: str, schema_version: int, data: dict[str, Any]) -> DomainEvent:
        """Rebuild a fact from its wire `data`, upcasting older schema versions first."""
        cls = self.current(event_type)
        version = schema_version
        while version < cls.SCHEMA_VERSION:
            data = self._upcasters[(event_type, version)](dict(data))
            version += 1
        if version != cls.SCHEMA_VERSION:
            raise UnknownEventTypeError(
                f"{event_type} schema version {schema_version} is newer than this code knows"
            )
        # Read as recorded: text is not normalised again, only escaped where it
        # cannot be encoded (values.RECORDED).
        return cls.model_validate(data, context=RECORDED)

    @contextmanager
    def bumped(self, new: type[DomainEvent], upcaster: Upcaster) -> Iterator[None]:
        """`new` is its type's class, one schema version up, for the length of the block."""
        old = self._current[new.TYPE]
        if new.SCHEMA_VERSION != old.SCHEMA_VERSION + 1:
            raise ValueError(f"{new.TYPE}: a bump goes from version {old.SCHEMA_VERSION} to "
                             f"{old.SCHEMA_VERSION + 1}")  # fmt: skip
        saved = dict(self._current), dict(self._models), dict(self._upcasters)
        self._current[new.TYPE] = new
        self._models[(new.TYPE, new.SCHEMA_VERSION)] = new
        self._upcasters[(new.TYPE, old.SCHEMA_VERSION)] = upcaster
        try:
            yield
        finally:
            self._current, self._models, self._upcasters = saved


EVENTS = EventRegistry(
    [
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
    ]
)

# The facts about one initiative (their scope is its id).
INITIATIVE_FACTS = frozenset({
    InitiativeRegistered.TYPE, FundsAllocated.TYPE, AllocationReleased.TYPE,
    FundsDisbursed.TYPE, MilestoneReached.TYPE, InitiativeClosed.TYPE,
})  # fmt: skip


def event_from_data(event_type: str, schema_version: int, data: dict[str, Any]) -> DomainEvent:
    """Rebuild a fact from its wire `data` (see EventRegistry.from_data)."""
    return EVENTS.from_data(event_type, schema_version, data)


def event_data(event: DomainEvent) -> dict[str, Any]:
    """The wire `data` of a fact: JSON-ready, money as two-decimal strings."""
    return event.model_dump(mode="json")
