"""The ledger: one consistency boundary holding every rule of the partnership.

All facts of one partnership share this boundary, so a command is decided against
the whole state and saved with one optimistic-concurrency check: two commands
racing for the last euro cannot both pass.

Every rule is written once, as what a fact must satisfy given the ledger before it
(`admit`). Deciding a command builds its facts and admits each; `verify` and every
consumer of the stream admit each recorded fact the same way, so a fact that no
valid command could have recorded is found wherever it is read. `apply` evolves the
ledger by one admitted fact.

Besides its data a fact has dates and an identity (`Stamp`): its effective date,
which must lie between the partnership's start and the day it is recorded, and once
stored its event id and position. A reversal is admitted only for the very fact
recorded at the position it names (same event id, type and data, found in
`RecordedFacts`), and only once (the ledger keeps the event ids reversed).

The entities a ledger holds (years, initiatives, allocations) are immutable values,
so `copy` is a few dictionary copies: whoever keeps a ledger as a cache decides on a
copy of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from homeledger.domain import commands as c
from homeledger.domain import events as e
from homeledger.domain.errors import (
    AllocationAlreadyExistsError,
    AllocationExceedsUnallocatedError,
    AllocationNotFoundError,
    AlreadyReversedError,
    CurrencyMismatchError,
    DateAfterRecordingError,
    DateBeforeReversedFactError,
    DateBeforeStartError,
    DateMismatchError,
    DisbursementExceedsAvailableError,
    DomainError,
    InitiativeAlreadyRegisteredError,
    InitiativeClosedError,
    InitiativeNotFoundError,
    InsufficientUnitsError,
    MilestoneAlreadyReachedError,
    NotReversibleError,
    PartnershipAlreadyEstablishedError,
    PartnershipNotEstablishedError,
    PledgeBelowCommitmentsError,
    PledgeMismatchError,
    PledgeUnchangedError,
    ReceiptExceedsPledgeError,
    ReleaseExceedsAllocationError,
    ReversalTargetError,
    SealError,
    TotalBelowZeroError,
    YearNotPledgedError,
)
from homeledger.domain.events import EVENTS
from homeledger.domain.money import ZERO, fmt
from homeledger.domain.pledge import Pledge, Terms, pledge_for
from homeledger.domain.portfolio import Portfolio
from homeledger.domain.values import new_uuid


@dataclass(frozen=True)
class Allocation:
    allocation_id: str
    initiative: str
    year: int
    amount: Decimal
    released: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.released


Lookup = Callable[[str], "Allocation | None"]


def _nowhere(allocation_id: str) -> Allocation | None:
    return None


class Allocations:
    """A ledger's allocations by id: those changed since the ledger was loaded, in
    memory, over those kept elsewhere and found with `lookup` (the store keeps every
    allocation ever made in a table of its own, so that a ledger's memory and the cost of
    loading it do not grow with the partnership's age). A ledger replayed in memory keeps
    them all in `changed`."""

    def __init__(self, lookup: Lookup = _nowhere, changed: dict[str, Allocation] | None = None):
        self.lookup = lookup
        self.changed: dict[str, Allocation] = {} if changed is None else changed
        # Answers known without a lookup: read ahead in bulk, or ids made here (new).
        self.known: dict[str, Allocation | None] = {}

    def get(self, allocation_id: str) -> Allocation | None:
        found = self.changed.get(allocation_id)
        if found is not None:
            return found
        if allocation_id in self.known:
            return self.known[allocation_id]
        return self.lookup(allocation_id)

    def know(self, answers: dict[str, Allocation | None]) -> None:
        """Answers read ahead (None: no such allocation), spared a lookup each."""
        self.known.update(answers)

    def new_id(self) -> str:
        """A new allocation id, known to be unused (a random UUID)."""
        allocation_id = new_uuid()
        self.known[allocation_id] = None
        return allocation_id

    def __contains__(self, allocation_id: object) -> bool:
        return isinstance(allocation_id, str) and self.get(allocation_id) is not None

    def __getitem__(self, allocation_id: str) -> Allocation:
        found = self.get(allocation_id)
        if found is None:
            raise KeyError(allocation_id)
        return found

    def __setitem__(self, allocation_id: str, allocation: Allocation) -> None:
        self.changed[allocation_id] = allocation

    def copy(self) -> Allocations:
        return Allocations(self.lookup, dict(self.changed))

    def kept(self) -> Allocations:
        """The same allocations once the changed ones are kept where `lookup` finds them."""
        return Allocations(self.lookup)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Allocations) and self.lookup is other.lookup
                and self.changed == other.changed)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Allocations({len(self.changed)} changed)"


@dataclass(frozen=True)
class Initiative:
    initiative: str
    name: str
    country: str
    programme: str
    closed_on: date | None = None
    allocated: Decimal = ZERO
    released: Decimal = ZERO
    disbursed: Decimal = ZERO
    milestones: frozenset[str] = frozenset()

    @property
    def available(self) -> Decimal:
        """Allocated, not released and not yet disbursed."""
        return self.allocated - self.released - self.disbursed


@dataclass(frozen=True)
class YearBook:
    """Money of one pledge year."""

    pledged: Decimal = ZERO
    received: Decimal = ZERO
    allocated: Decimal = ZERO
    released: Decimal = ZERO

    @property
    def committed(self) -> Decimal:
        """Allocated and not released: what the pledge must keep covering."""
        return self.allocated - self.released

    @property
    def unallocated(self) -> Decimal:
        return self.pledged - self.committed


@dataclass(frozen=True)
class Stamp:
    """What the ledger is told about a fact besides its data: its effective (business)
    date and the day it was recorded (UTC), and once it is stored its event id and
    position."""

    effective_date: date
    recorded_on: date
    event_id: str = ""
    position: int | None = None


@dataclass(frozen=True)
class RecordedFact:
    """A reversible fact as recorded: what a reversal naming its position must match."""

    event_id: str
    type: str
    digest: bytes


FactLookup = Callable[[int], "RecordedFact | None"]


def _no_fact(position: int) -> RecordedFact | None:
    return None


class RecordedFacts:
    """The reversible facts by position: those applied here with their position (a
    ledger replayed in memory keeps them all) over those kept elsewhere and found with
    `lookup` (a ledger loaded from the store reads the one fact a reversal names, so
    that its memory does not grow with the partnership's age)."""

    def __init__(self, lookup: FactLookup = _no_fact,
                 changed: dict[int, RecordedFact] | None = None) -> None:  # fmt: skip
        self.lookup = lookup
        self.changed: dict[int, RecordedFact] = {} if changed is None else changed

    def get(self, position: int) -> RecordedFact | None:
        found = self.changed.get(position)
        return found if found is not None else self.lookup(position)

    def __setitem__(self, position: int, fact: RecordedFact) -> None:
        self.changed[position] = fact

    def copy(self) -> RecordedFacts:
        return RecordedFacts(self.lookup, dict(self.changed))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RecordedFacts) and self.lookup == other.lookup
                and self.changed == other.changed)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordedFacts({len(self.changed)} in memory)"


def fact_digest(fact: e.DomainEvent) -> bytes:
    """A digest of a fact's type and data (the same for the fact rebuilt from its wire
    data: Decimals, dates and text have stable reprs)."""
    text = repr((fact.TYPE, sorted(fact.__dict__.items())))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def recorded_fact(fact: e.DomainEvent, event_id: str) -> RecordedFact | None:
    """What a reversal of this fact must match (None: it cannot be reversed)."""
    if fact.TYPE not in e.REVERSIBLE:
        return None
    return RecordedFact(event_id, fact.TYPE, fact_digest(fact))


# What each fact is called in a message about its date.
_NOUNS = {
    e.UnitsAcquired.TYPE: "acquisition", e.UnitsDisposed.TYPE: "disposal",
    e.DonationPledged.TYPE: "pledge", e.DonationReceived.TYPE: "receipt",
    e.InitiativeRegistered.TYPE: "registration", e.FundsAllocated.TYPE: "allocation",
    e.AllocationReleased.TYPE: "release", e.FundsDisbursed.TYPE: "disbursement",
    e.MilestoneReached.TYPE: "milestone", e.InitiativeClosed.TYPE: "closing",
    e.FactReversed.TYPE: "reversal",
}  # fmt: skip
# Facts whose date is not an effective date to check: the partnership's start defines
# the window, and a seal is the system's own.
_UNDATED = frozenset({e.PartnershipEstablished.TYPE, e.LedgerSealed.TYPE})

C = TypeVar("C", bound=c.Command)
E = TypeVar("E", bound=e.DomainEvent)
_DECIDERS: dict[type[c.Command], Callable[[Ledger, Any], list[e.DomainEvent]]] = {}
# Keyed by type name, so that a fact of any schema version of a type is treated the same.
_RULES: dict[str, Callable[[Ledger, Any], None]] = {}
_APPLIERS: dict[str, Callable[[Ledger, Any], None]] = {}
# A reversal's rules and effect, by the reversed fact's type.
_REVERSAL_RULES: dict[str, Callable[[Ledger, Any], None]] = {}
_UNDOERS: dict[str, Callable[[Ledger, Any], None]] = {}


def _decides(command: type[C]) -> Callable[[Callable[[Ledger, C], list[e.DomainEvent]]], Any]:
    def register(func: Callable[[Ledger, C], list[e.DomainEvent]]) -> Any:
        _DECIDERS[command] = func
        return func

    return register


def _rule(event: type[E]) -> Callable[[Callable[[Ledger, E], None]], Any]:
    def register(func: Callable[[Ledger, E], None]) -> Any:
        _RULES[event.TYPE] = func
        return func

    return register


def _applies(event: type[E]) -> Callable[[Callable[[Ledger, E], None]], Any]:
    def register(func: Callable[[Ledger, E], None]) -> Any:
        _APPLIERS[event.TYPE] = func
        return func

    return register


@dataclass
class Ledger:
    """The state every rule needs, rebuilt from the facts."""

    partnership: Terms | None = None
    portfolio: Portfolio = field(default_factory=Portfolio)
    years: dict[int, YearBook] = field(default_factory=dict)
    initiatives: dict[str, Initiative] = field(default_factory=dict)
    allocations: Allocations = field(default_factory=Allocations)
    last_seal_position: int = 0
    recorded: RecordedFacts = field(default_factory=RecordedFacts)
    reversed: frozenset[str] = frozenset()  # the event ids of the facts reversed

    def decide(self, command: c.Command, today: date | None = None) -> list[e.DomainEvent]:
        """The facts a command records, or a DomainError naming the broken rule.

        With `today` (the day of recording, UTC) each fact is admitted with its dates:
        its effective date is the command's `on`, else today (or the fact's own date).
        The ledger is not changed (each fact is admitted on a copy when there are more
        than one)."""
        if not isinstance(command, c.EstablishPartnership):
            self._terms()
        if isinstance(command, c.MoneyCommand) and command.currency is not None:
            self._check_currency(command.currency)
        facts = _DECIDERS[type(command)](self, command)
        ledger = self if len(facts) == 1 else self.copy()
        for fact in facts:
            stamp = None if today is None else dates_of(command, fact, today)
            ledger.admit(fact, stamp)
            if ledger is not self:
                ledger.apply(fact, stamp)
        return facts

    def admit(self, fact: e.DomainEvent, stamp: Stamp | None = None) -> None:
        """Raise the DomainError of the first rule `fact` breaks, recorded next.

        With `stamp`, its effective date is checked too (not before the start, not after
        the day it is recorded, a fact's own date where it has one)."""
        if not isinstance(fact, e.PartnershipEstablished):
            self._terms()
        if stamp is not None and fact.TYPE not in _UNDATED:
            self._check_dates(fact, stamp)
        _RULES[fact.TYPE](self, fact)

    def apply(self, event: e.DomainEvent, stamp: Stamp | None = None) -> None:
        """Evolve by one fact (admitted: appliers check nothing). A reversible fact is
        kept by its position when `stamp` gives one (a replay in memory)."""
        _APPLIERS[event.TYPE](self, event)
        if stamp is not None and stamp.position is not None:
            known = recorded_fact(event, stamp.event_id)
            if known is not None:
                self.recorded[stamp.position] = known

    def apply_all(self, events: Iterable[e.DomainEvent]) -> Ledger:
        for event in events:
            self.apply(event)
        return self

    def copy(self) -> Ledger:
        """An independent ledger in the same state (its entities are immutable values)."""
        return Ledger(
            self.partnership, self.portfolio.copy(), dict(self.years), dict(self.initiatives),
            self.allocations.copy(), self.last_seal_position, self.recorded.copy(),
            self.reversed,
        )  # fmt: skip

    def year(self, year: int) -> YearBook:
        return self.years.get(year) or YearBook()

    # Guards shared by several rules.

    def _terms(self) -> Terms:
        if self.partnership is None:
            raise PartnershipNotEstablishedError(
                "no partnership is established yet; run 'homeledger init' first"
            )
        return self.partnership

    def _check_currency(self, currency: str) -> None:
        terms = self._terms()
        if currency != terms.currency:
            raise CurrencyMismatchError(
                f"amount in {currency} refused: this partnership's currency is {terms.currency}"
            )

    def _not_before_start(self, on: date, what: str) -> None:
        start = self._terms().start_date
        if on < start:
            raise DateBeforeStartError(
                f"{what} dated {on.isoformat()} is before the partnership's start "
                f"on {start.isoformat()}"
            )

    def _check_dates(self, fact: e.DomainEvent, stamp: Stamp) -> None:
        on, what = stamp.effective_date, _NOUNS.get(fact.TYPE, fact.TYPE)
        own = fact.business_date(on)
        if own != on:
            raise DateMismatchError(
                f"{what} dated {own.isoformat()} is recorded as effective on {on.isoformat()}"
            )
        self._not_before_start(on, what)
        if on > stamp.recorded_on:
            raise DateAfterRecordingError(
                f"{what} dated {on.isoformat()} is after the day it is recorded, "
                f"{stamp.recorded_on.isoformat()}"
            )
        if isinstance(fact, e.FactReversed):
            first = fact.reversed_fact.business_date(on)
            if on < first:
                raise DateBeforeReversedFactError(
                    f"reversal dated {on.isoformat()} is before the {fact.reversed_type} it "
                    f"reverses, dated {first.isoformat()}"
                )

    def _initiative(self, initiative: str) -> Initiative:
        try:
            return self.initiatives[initiative]
        except KeyError:
            raise InitiativeNotFoundError(f"initiative {initiative!r} is not registered") from None

    def _pledged_year(self, year: int) -> YearBook:
        book = self.years.get(year)
        if book is None or book.pledged == ZERO:
            raise YearNotPledgedError(f"no pledge is recorded for {year}")
        return book

    def pledge(self, year: int) -> Pledge:
        """The year's pledge as the portfolio history gives it now."""
        return pledge_for(self._terms(), self.portfolio, year, self.year(year).pledged)


def dates_of(command: c.Command, fact: e.DomainEvent, today: date) -> Stamp:
    """The dates of a fact a command records today: its own date where it has one,
    else the command's `on`, else today."""
    return Stamp(fact.business_date(command.on_or(today)), today)


def pledged_fact(terms: Terms, pledge: Pledge) -> e.DonationPledged:
    """The DonationPledged fact that records a computed pledge."""
    return EVENTS.new(
        e.DonationPledged, year=pledge.year, basis=terms.basis, unit_basis=pledge.unit_basis,
        rate=terms.rate, amount=pledge.amount, delta=pledge.delta, currency=terms.currency,
    )  # fmt: skip


# Deciders: one per command. They build the facts a command asks for; `decide` admits
# them (the rules are the facts').


@_decides(c.EstablishPartnership)
def _establish(ledger: Ledger, cmd: c.EstablishPartnership) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.PartnershipEstablished, donor=cmd.donor, beneficiary=cmd.beneficiary,
            rate=cmd.rate, currency=cmd.currency, basis=cmd.basis, start_date=cmd.start,
        )
    ]  # fmt: skip


@_decides(c.AcquireUnits)
def _acquire(ledger: Ledger, cmd: c.AcquireUnits) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.UnitsAcquired, country=cmd.country, units=cmd.units, effective_date=cmd.on,
            reference=cmd.ref,
        )
    ]  # fmt: skip


@_decides(c.DisposeUnits)
def _dispose(ledger: Ledger, cmd: c.DisposeUnits) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.UnitsDisposed, country=cmd.country, units=cmd.units, effective_date=cmd.on,
            reference=cmd.ref,
        )
    ]  # fmt: skip


@_decides(c.PledgeDonation)
def _pledge(ledger: Ledger, cmd: c.PledgeDonation) -> list[e.DomainEvent]:
    _pledge_not_before_start(ledger, cmd.year)  # before computing a year that cannot be
    return [pledged_fact(ledger._terms(), ledger.pledge(cmd.year))]


@_decides(c.ReceiveDonation)
def _receive(ledger: Ledger, cmd: c.ReceiveDonation) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.DonationReceived, year=cmd.year, amount=cmd.amount,
            currency=ledger._terms().currency, received_on=cmd.on,
        )
    ]  # fmt: skip


@_decides(c.RegisterInitiative)
def _register(ledger: Ledger, cmd: c.RegisterInitiative) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.InitiativeRegistered, initiative=cmd.id, name=cmd.name, country=cmd.country,
            programme=cmd.programme,
        )
    ]  # fmt: skip


@_decides(c.CloseInitiative)
def _close(ledger: Ledger, cmd: c.CloseInitiative) -> list[e.DomainEvent]:
    return [EVENTS.new(e.InitiativeClosed, initiative=cmd.id, closed_on=cmd.on,
                       reason=cmd.reason)]  # fmt: skip


@_decides(c.AllocateFunds)
def _allocate(ledger: Ledger, cmd: c.AllocateFunds) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.FundsAllocated, allocation_id=cmd.allocation_id or ledger.allocations.new_id(),
            initiative=cmd.initiative, year=cmd.year, amount=cmd.amount,
            currency=ledger._terms().currency,
        )
    ]  # fmt: skip


@_decides(c.ReleaseAllocation)
def _release(ledger: Ledger, cmd: c.ReleaseAllocation) -> list[e.DomainEvent]:
    allocation = _allocation(ledger, cmd.id)
    return [
        EVENTS.new(
            e.AllocationReleased, allocation_id=cmd.id, initiative=allocation.initiative,
            year=allocation.year, amount=cmd.amount, currency=ledger._terms().currency,
            reason=cmd.reason,
        )
    ]  # fmt: skip


@_decides(c.DisburseFunds)
def _disburse(ledger: Ledger, cmd: c.DisburseFunds) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.FundsDisbursed, initiative=cmd.initiative, amount=cmd.amount,
            currency=ledger._terms().currency, disbursed_on=cmd.on,
        )
    ]  # fmt: skip


@_decides(c.RecordMilestone)
def _milestone(ledger: Ledger, cmd: c.RecordMilestone) -> list[e.DomainEvent]:
    return [
        EVENTS.new(
            e.MilestoneReached, initiative=cmd.initiative, milestone=cmd.name,
            reached_on=cmd.on, evidence=cmd.evidence,
        )
    ]  # fmt: skip


@_decides(c.ReverseFact)
def _reverse(ledger: Ledger, cmd: c.ReverseFact) -> list[e.DomainEvent]:
    target = cmd.target
    if target is None:  # the application looks the fact up; nothing to reverse without it
        raise ReversalTargetError(f"no recorded fact was found for {cmd.id!r}")
    return [
        EVENTS.new(
            e.FactReversed, reverses=target.event_id, reversed_type=target.type,
            reversed_position=target.position, reason=cmd.reason,
            original=e.event_data(target.fact),
        )
    ]  # fmt: skip


@_decides(c.SealLedger)
def _seal(ledger: Ledger, cmd: c.SealLedger) -> list[e.DomainEvent]:
    return [EVENTS.new(e.LedgerSealed, position=cmd.position, digest=cmd.digest,
                       signature=cmd.signature, key_id=cmd.key_id)]  # fmt: skip


# Rules: what each fact must satisfy, given the ledger before it.


def _allocation(ledger: Ledger, allocation_id: str) -> Allocation:
    allocation = ledger.allocations.get(allocation_id)
    if allocation is None:
        raise AllocationNotFoundError(f"allocation {allocation_id!r} does not exist")
    return allocation


def _pledge_not_before_start(ledger: Ledger, year: int) -> None:
    start = ledger._terms().start_date
    if year < start.year:
        raise DateBeforeStartError(
            f"pledge for {year} is before the partnership's start year {start.year}"
        )


@_rule(e.PartnershipEstablished)
def _established_once(ledger: Ledger, ev: e.PartnershipEstablished) -> None:
    if ledger.partnership is not None:
        p = ledger.partnership
        raise PartnershipAlreadyEstablishedError(
            f"the partnership of {p.donor} and {p.beneficiary} was already established "
            f"on {p.start_date.isoformat()}; it is established once per ledger"
        )


@_rule(e.UnitsAcquired)
def _acquired_after_start(ledger: Ledger, ev: e.UnitsAcquired) -> None:
    ledger._not_before_start(ev.effective_date, "acquisition")


@_rule(e.UnitsDisposed)
def _disposed_of_held(ledger: Ledger, ev: e.UnitsDisposed) -> None:
    ledger._not_before_start(ev.effective_date, "disposal")
    # Later disposals already recorded must stay covered too.
    lowest = ledger.portfolio.lowest_from(ev.country, ev.effective_date)
    if ev.units > lowest:
        held = ledger.portfolio.held(ev.country, ev.effective_date)
        later = "" if lowest == held else f" ({lowest} after later disposals)"
        raise InsufficientUnitsError(
            f"disposal of {ev.units} units in {ev.country} on {ev.effective_date.isoformat()} "
            f"exceeds the {held} held then{later} by {ev.units - lowest}"
        )


@_rule(e.DonationPledged)
def _pledged_as_computed(ledger: Ledger, ev: e.DonationPledged) -> None:
    _pledge_not_before_start(ledger, ev.year)
    terms, expected = ledger._terms(), ledger.pledge(ev.year)
    if ev != pledged_fact(terms, expected):
        raise PledgeMismatchError(
            f"{ev.year} pledge recorded as {fmt(ev.amount)} on unit basis {ev.unit_basis} "
            f"(delta {fmt(ev.delta)}); the portfolio history gives {fmt(expected.amount)} "
            f"on {expected.unit_basis} (delta {fmt(expected.delta)})"
        )
    if ev.delta == ZERO:
        raise PledgeUnchangedError(
            f"the {ev.year} pledge computed from the portfolio is {fmt(ev.amount)}, "
            f"the same as recorded: nothing to adjust"
        )
    book = ledger.year(ev.year)
    for what, figure in (("received", book.received), ("allocated", book.committed)):
        if ev.amount < figure:
            raise PledgeBelowCommitmentsError(
                f"the {ev.year} pledge would fall to {fmt(ev.amount)}, below the "
                f"{fmt(figure)} already {what}, by {fmt(figure - ev.amount)}"
            )


@_rule(e.DonationReceived)
def _received_within_pledge(ledger: Ledger, ev: e.DonationReceived) -> None:
    ledger._check_currency(ev.currency)
    ledger._not_before_start(ev.received_on, "receipt")
    book = ledger._pledged_year(ev.year)
    outstanding = book.pledged - book.received
    if ev.amount > outstanding:
        raise ReceiptExceedsPledgeError(
            f"receipt of {fmt(ev.amount)} exceeds the {ev.year} outstanding pledge of "
            f"{fmt(outstanding)} by {fmt(ev.amount - outstanding)}"
        )


@_rule(e.InitiativeRegistered)
def _registered_once(ledger: Ledger, ev: e.InitiativeRegistered) -> None:
    if ev.initiative in ledger.initiatives:
        raise InitiativeAlreadyRegisteredError(
            f"initiative {ev.initiative!r} is already registered"
        )


@_rule(e.InitiativeClosed)
def _closed_once(ledger: Ledger, ev: e.InitiativeClosed) -> None:
    initiative = ledger._initiative(ev.initiative)
    if initiative.closed_on is not None:
        raise InitiativeClosedError(
            f"initiative {ev.initiative!r} was already closed on "
            f"{initiative.closed_on.isoformat()}"
        )


@_rule(e.FundsAllocated)
def _allocated_within_pledge(ledger: Ledger, ev: e.FundsAllocated) -> None:
    ledger._check_currency(ev.currency)
    initiative = ledger._initiative(ev.initiative)
    if initiative.closed_on is not None:
        raise InitiativeClosedError(
            f"initiative {ev.initiative!r} was closed on {initiative.closed_on.isoformat()}; "
            "nothing is allocated to it afterwards"
        )
    if ev.allocation_id in ledger.allocations:
        raise AllocationAlreadyExistsError(f"allocation {ev.allocation_id!r} already exists")
    book = ledger._pledged_year(ev.year)
    if ev.amount > book.unallocated:
        raise AllocationExceedsUnallocatedError(
            f"allocation of {fmt(ev.amount)} exceeds the {ev.year} unallocated balance of "
            f"{fmt(book.unallocated)} by {fmt(ev.amount - book.unallocated)}"
        )


@_rule(e.AllocationReleased)
def _released_within_allocation(ledger: Ledger, ev: e.AllocationReleased) -> None:
    ledger._check_currency(ev.currency)
    allocation = _allocation(ledger, ev.allocation_id)
    if (ev.initiative, ev.year) != (allocation.initiative, allocation.year):
        raise AllocationNotFoundError(
            f"allocation {ev.allocation_id!r} is of {allocation.initiative!r} for "
            f"{allocation.year}, not of {ev.initiative!r} for {ev.year}"
        )
    if ev.amount > allocation.remaining:
        raise ReleaseExceedsAllocationError(
            f"release of {fmt(ev.amount)} exceeds the {fmt(allocation.remaining)} still "
            f"allocated by {ev.allocation_id!r} by {fmt(ev.amount - allocation.remaining)}"
        )
    initiative = ledger._initiative(allocation.initiative)
    if ev.amount > initiative.available:
        raise ReleaseExceedsAllocationError(
            f"release of {fmt(ev.amount)} exceeds the {fmt(initiative.available)} of "
            f"{allocation.initiative!r} not yet disbursed by "
            f"{fmt(ev.amount - initiative.available)}"
        )


@_rule(e.FundsDisbursed)
def _disbursed_within_allocation(ledger: Ledger, ev: e.FundsDisbursed) -> None:
    ledger._check_currency(ev.currency)
    ledger._not_before_start(ev.disbursed_on, "disbursement")
    initiative = ledger._initiative(ev.initiative)
    if ev.amount > initiative.available:
        raise DisbursementExceedsAvailableError(
            f"disbursement of {fmt(ev.amount)} exceeds the {fmt(initiative.available)} "
            f"allocated to {ev.initiative!r} and not yet released or disbursed by "
            f"{fmt(ev.amount - initiative.available)}"
        )


@_rule(e.MilestoneReached)
def _milestone_once(ledger: Ledger, ev: e.MilestoneReached) -> None:
    initiative = ledger._initiative(ev.initiative)
    if ev.milestone in initiative.milestones:
        raise MilestoneAlreadyReachedError(
            f"milestone {ev.milestone!r} of {ev.initiative!r} was already reached"
        )


@_rule(e.FactReversed)
def _reverses_a_recorded_fact_once(ledger: Ledger, ev: e.FactReversed) -> None:
    where = f"{ev.reversed_type} at position {ev.reversed_position}"
    if ev.reversed_type not in e.REVERSIBLE:
        kinds = ", ".join(sorted(e.REVERSIBLE))
        raise NotReversibleError(
            f"{where} cannot be reversed: only {kinds} can (correct an allocation with a "
            "release, a pledge with a new pledge)"
        )
    known = ledger.recorded.get(ev.reversed_position)
    if known is None or known.event_id != ev.reverses:
        raise ReversalTargetError(f"no {ev.reversed_type} with event id {ev.reverses} is "
                                  f"recorded at position {ev.reversed_position}")  # fmt: skip
    differs = [
        name for name, same in (
            ("type", known.type == ev.reversed_type),
            ("data", known.digest == fact_digest(ev.reversed_fact)),
        ) if not same
    ]  # fmt: skip
    if differs:
        raise ReversalTargetError(
            f"the reversal of {where} does not match the fact recorded there "
            f"({', '.join(differs)} differ)"
        )
    if ev.reverses in ledger.reversed:
        raise AlreadyReversedError(f"{where} was already reversed; a fact is reversed once")
    _REVERSAL_RULES.get(ev.reversed_type, _no_rule)(ledger, ev.reversed_fact)


def _no_rule(ledger: Ledger, fact: Any) -> None:
    """Taking this fact back breaks no rule."""


def _reversal_rule(event: type[E]) -> Callable[[Callable[[Ledger, E], None]], Any]:
    def register(func: Callable[[Ledger, E], None]) -> Any:
        _REVERSAL_RULES[event.TYPE] = func
        return func

    return register


@_reversal_rule(e.UnitsAcquired)
def _acquisition_reversed_leaves_disposals_covered(ledger: Ledger, ev: e.UnitsAcquired) -> None:
    lowest = ledger.portfolio.lowest_from(ev.country, ev.effective_date)
    if ev.units > lowest:
        raise InsufficientUnitsError(
            f"reversing the acquisition of {ev.units} units in {ev.country} on "
            f"{ev.effective_date.isoformat()} would leave later disposals uncovered: at "
            f"least {lowest} are held from then on, {ev.units - lowest} too few"
        )


@_reversal_rule(e.DonationReceived)
def _receipt_reversed_leaves_receipts(ledger: Ledger, ev: e.DonationReceived) -> None:
    received = ledger.year(ev.year).received
    if ev.amount > received:
        raise TotalBelowZeroError(
            f"reversing the receipt of {fmt(ev.amount)} would leave the {ev.year} receipts "
            f"of {fmt(received)} below zero by {fmt(ev.amount - received)}"
        )


@_reversal_rule(e.FundsDisbursed)
def _disbursement_reversed_leaves_disbursed(ledger: Ledger, ev: e.FundsDisbursed) -> None:
    disbursed = ledger._initiative(ev.initiative).disbursed
    if ev.amount > disbursed:
        raise TotalBelowZeroError(
            f"reversing the disbursement of {fmt(ev.amount)} would leave the "
            f"{fmt(disbursed)} disbursed to {ev.initiative!r} below zero by "
            f"{fmt(ev.amount - disbursed)}"
        )


@_reversal_rule(e.MilestoneReached)
def _milestone_reversed_was_reached(ledger: Ledger, ev: e.MilestoneReached) -> None:
    if ev.milestone not in ledger._initiative(ev.initiative).milestones:
        raise ReversalTargetError(
            f"milestone {ev.milestone!r} of {ev.initiative!r} is not reached: nothing to reverse"
        )


@_rule(e.LedgerSealed)
def _seal_advances(ledger: Ledger, ev: e.LedgerSealed) -> None:
    if ev.position <= ledger.last_seal_position:
        raise SealError(
            f"nothing new to seal: the ledger is already sealed up to position "
            f"{ledger.last_seal_position}"
        )


_new_object = object.__new__
_E = TypeVar("_E")


def _replaced(entity: _E, **changes: Any) -> _E:
    """`dataclasses.replace` for the ledger's frozen entities, which have neither
    `__post_init__` nor slots: a copy of the fields with some changed, in a third of
    the time (two per allocation)."""
    if not changes.keys() <= entity.__dataclass_fields__.keys():  # type: ignore[attr-defined]
        raise TypeError(f"{type(entity).__name__} has no field {sorted(changes)}")
    new = _new_object(type(entity))
    fields = new.__dict__
    fields.update(entity.__dict__)
    fields.update(changes)
    return new


# Appliers: one per fact. Entities are replaced, never changed in place (a copied
# ledger shares them).


@_applies(e.PartnershipEstablished)
def _on_established(ledger: Ledger, ev: e.PartnershipEstablished) -> None:
    ledger.partnership = Terms(
        ev.donor, ev.beneficiary, ev.rate, ev.currency, ev.basis, ev.start_date
    )


@_applies(e.UnitsAcquired)
def _on_acquired(ledger: Ledger, ev: e.UnitsAcquired) -> None:
    ledger.portfolio.apply(ev.country, ev.effective_date, ev.units)


@_applies(e.UnitsDisposed)
def _on_disposed(ledger: Ledger, ev: e.UnitsDisposed) -> None:
    ledger.portfolio.apply(ev.country, ev.effective_date, -ev.units)


@_applies(e.DonationPledged)
def _on_pledged(ledger: Ledger, ev: e.DonationPledged) -> None:
    ledger.years[ev.year] = _replaced(ledger.year(ev.year), pledged=ev.amount)


@_applies(e.DonationReceived)
def _on_received(ledger: Ledger, ev: e.DonationReceived) -> None:
    book = ledger.year(ev.year)
    ledger.years[ev.year] = _replaced(book, received=book.received + ev.amount)


@_applies(e.InitiativeRegistered)
def _on_registered(ledger: Ledger, ev: e.InitiativeRegistered) -> None:
    ledger.initiatives[ev.initiative] = Initiative(
        ev.initiative, ev.name, ev.country, ev.programme
    )


@_applies(e.InitiativeClosed)
def _on_closed(ledger: Ledger, ev: e.InitiativeClosed) -> None:
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(initiative, closed_on=ev.closed_on)


def allocation_after(
    allocation: Allocation | None, ev: e.FundsAllocated | e.AllocationReleased
) -> Allocation:
    """An allocation as a fact leaves it (made by FundsAllocated, changed by a release)."""
    if isinstance(ev, e.FundsAllocated):
        return Allocation(ev.allocation_id, ev.initiative, ev.year, ev.amount)
    if allocation is None:
        raise KeyError(ev.allocation_id)
    return _replaced(allocation, released=allocation.released + ev.amount)


@_applies(e.FundsAllocated)
def _on_allocated(ledger: Ledger, ev: e.FundsAllocated) -> None:
    ledger.allocations[ev.allocation_id] = allocation_after(None, ev)
    book = ledger.year(ev.year)
    ledger.years[ev.year] = _replaced(book, allocated=book.allocated + ev.amount)
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(
        initiative, allocated=initiative.allocated + ev.amount
    )


@_applies(e.AllocationReleased)
def _on_released(ledger: Ledger, ev: e.AllocationReleased) -> None:
    ledger.allocations[ev.allocation_id] = allocation_after(
        ledger.allocations.get(ev.allocation_id), ev
    )
    book = ledger.year(ev.year)
    ledger.years[ev.year] = _replaced(book, released=book.released + ev.amount)
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(
        initiative, released=initiative.released + ev.amount
    )


@_applies(e.FundsDisbursed)
def _on_disbursed(ledger: Ledger, ev: e.FundsDisbursed) -> None:
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(
        initiative, disbursed=initiative.disbursed + ev.amount
    )


@_applies(e.MilestoneReached)
def _on_milestone(ledger: Ledger, ev: e.MilestoneReached) -> None:
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(
        initiative, milestones=initiative.milestones | {ev.milestone}
    )


@_applies(e.LedgerSealed)
def _on_sealed(ledger: Ledger, ev: e.LedgerSealed) -> None:
    ledger.last_seal_position = ev.position


@_applies(e.FactReversed)
def _on_reversed(ledger: Ledger, ev: e.FactReversed) -> None:
    ledger.reversed = ledger.reversed | {ev.reverses}
    _UNDOERS[ev.reversed_type](ledger, ev.reversed_fact)


def _undoes(event: type[E]) -> Callable[[Callable[[Ledger, E], None]], Any]:
    def register(func: Callable[[Ledger, E], None]) -> Any:
        _UNDOERS[event.TYPE] = func
        return func

    return register


@_undoes(e.UnitsAcquired)
def _undo_acquired(ledger: Ledger, ev: e.UnitsAcquired) -> None:
    ledger.portfolio.apply(ev.country, ev.effective_date, -ev.units)


@_undoes(e.UnitsDisposed)
def _undo_disposed(ledger: Ledger, ev: e.UnitsDisposed) -> None:
    ledger.portfolio.apply(ev.country, ev.effective_date, ev.units)


@_undoes(e.DonationReceived)
def _undo_received(ledger: Ledger, ev: e.DonationReceived) -> None:
    book = ledger.year(ev.year)
    ledger.years[ev.year] = _replaced(book, received=book.received - ev.amount)


@_undoes(e.FundsDisbursed)
def _undo_disbursed(ledger: Ledger, ev: e.FundsDisbursed) -> None:
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(
        initiative, disbursed=initiative.disbursed - ev.amount
    )


@_undoes(e.MilestoneReached)
def _undo_milestone(ledger: Ledger, ev: e.MilestoneReached) -> None:
    initiative = ledger.initiatives[ev.initiative]
    ledger.initiatives[ev.initiative] = _replaced(
        initiative, milestones=initiative.milestones - {ev.milestone}
    )


def replay(facts: Iterable[e.DomainEvent]) -> Ledger:
    return Ledger().apply_all(facts)


__all__ = ["DomainError", "Ledger", "RecordedFact", "RecordedFacts", "Stamp", "dates_of",
           "fact_digest", "pledged_fact", "recorded_fact", "replay"]
