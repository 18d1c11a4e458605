"""The facts of the ledger. Their names and wire fields are the contract (docs/reference.md).

Each event is a frozen pydantic model of its `data` fields. Metadata (ids, times,
actor, hash chain) lives in the envelope the adapters build around it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any, ClassVar, Self, TypeVar, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

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

    def business_date(self, default: date) -> date:
        """The business date. A fact without one of its own takes `default`: the date
        its command was given (`--on`), else the day it was recorded."""
        return default


class PartnershipEstablished(DomainEvent):
    TYPE: ClassVar[str] = "PartnershipEstablished"
    donor: Text
    beneficiary: Text
    rate: Money
    currency: CurrencyCode
    basis: Basis
    start_date: LedgerDate

    def business_date(self, default: date) -> date:
        return self.start_date


class UnitsAcquired(DomainEvent):
    TYPE: ClassVar[str] = "UnitsAcquired"
    country: CountryCode
    units: Annotated[int, Field(strict=True, gt=0)]
    effective_date: LedgerDate
    reference: OptionalText = ""

    def scope(self) -> str:
        return self.country

    def business_date(self, default: date) -> date:
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

    def business_date(self, default: date) -> date:
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

    def business_date(self, default: date) -> date:
        return self.disbursed_on


class MilestoneReached(DomainEvent):
    TYPE: ClassVar[str] = "MilestoneReached"
    initiative: InitiativeId
    milestone: Text
    reached_on: LedgerDate
    evidence: OptionalText = ""

    def scope(self) -> str:
        return self.initiative

    def business_date(self, default: date) -> date:
        return self.reached_on


class InitiativeClosed(DomainEvent):
    TYPE: ClassVar[str] = "InitiativeClosed"
    initiative: InitiativeId
    closed_on: LedgerDate
    reason: OptionalText = ""

    def scope(self) -> str:
        return self.initiative

    def business_date(self, default: date) -> date:
        return self.closed_on


class LedgerSealed(DomainEvent):
    TYPE: ClassVar[str] = "LedgerSealed"
    position: int
    digest: str
    # Added fields (older seals have none): the signature of the digest and its key.
    signature: str = ""
    key_id: str = ""


def _event_id(value: str) -> str:
    if not EVENT_ID_RE.fullmatch(value):
        raise ValueError(f"{value[:70]!r} is not an event id (a UUID in lower case)")
    return value


EVENT_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EventId = Annotated[str, AfterValidator(_event_id)]


class FactReversed(DomainEvent):
    """Takes the effect of one earlier fact out of every figure from its position on.

    `original` is the reversed fact's `data`, copied whole (in its type's current schema
    version); the ledger admits a reversal only if it matches the fact recorded under
    `reverses` at `reversed_position` (see domain.ledger). Its scope on NATS is the
    reversed fact's.
    """

    TYPE: ClassVar[str] = "FactReversed"
    reverses: EventId
    reversed_type: str
    reversed_position: Annotated[int, Field(strict=True, ge=1)]
    reason: Text
    original: dict[str, Any]
    _reversed: DomainEvent = PrivateAttr()

    @model_validator(mode="after")
    def _original_is_a_fact(self) -> Self:
        # A reversal of something that is no fact is no fact either.
        cls = EVENTS.current(self.reversed_type)
        fact = EVENTS.from_data(self.reversed_type, cls.SCHEMA_VERSION, self.original)
        if event_data(fact) != self.original:
            raise ValueError(
                f"original is not the data of a {self.reversed_type} as recorded (every "
                "field, in its recorded form)"
            )
        self._reversed = fact
        return self

    @property
    def reversed_fact(self) -> DomainEvent:
        """The reversed fact, rebuilt from `original`."""
        return self._reversed

    def scope(self) -> str:
        return self._reversed.scope()


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
        FactReversed,
    ]
)

# The facts about one initiative (their scope is its id).
INITIATIVE_FACTS = frozenset({
    InitiativeRegistered.TYPE, FundsAllocated.TYPE, AllocationReleased.TYPE,
    FundsDisbursed.TYPE, MilestoneReached.TYPE, InitiativeClosed.TYPE,
})  # fmt: skip


# What a reversal may take back: facts about homes and money that happened (or did not)
# on a date of their own. Pledges, allocations and releases are corrected by a pledge
# adjustment or a release; registrations and closings stand.
REVERSIBLE = frozenset({
    UnitsAcquired.TYPE, UnitsDisposed.TYPE, DonationReceived.TYPE, FundsDisbursed.TYPE,
    MilestoneReached.TYPE,
})  # fmt: skip


def initiative_of(fact: DomainEvent) -> str | None:
    """The initiative a fact is about (a reversal: the one its reversed fact is about)."""
    if isinstance(fact, FactReversed):
        fact = fact.reversed_fact
    return str(fact.__dict__["initiative"]) if fact.TYPE in INITIATIVE_FACTS else None


def effect_date(fact: DomainEvent, effective_date: date) -> date:
    """The business date from which a fact counts in a cut by effective date: its own
    effective date, except for a reversal, which takes its reversed fact out of the
    figures wherever that fact counted (its own date is when the correction was made)."""
    if isinstance(fact, FactReversed):
        return fact.reversed_fact.business_date(effective_date)
    return effective_date


def event_from_data(event_type: str, schema_version: int, data: dict[str, Any]) -> DomainEvent:
    """Rebuild a fact from its wire `data` (see EventRegistry.from_data)."""
    return EVENTS.from_data(event_type, schema_version, data)


def event_data(event: DomainEvent) -> dict[str, Any]:
    """The wire `data` of a fact: JSON-ready, money as two-decimal strings."""
    return event.model_dump(mode="json")
