"""The ledger: one consistency boundary holding every rule of SPEC section 1.

All facts of one partnership share this boundary, so a command is decided against
the whole state and saved with one optimistic-concurrency check: two commands
racing for the last euro cannot both pass.

`decide` turns a valid command into new facts or raises a named DomainError;
`apply` evolves the state by one fact. Both are pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar
from uuid import uuid4

from homeledger.domain import commands as c
from homeledger.domain import events as e
from homeledger.domain.errors import (
    AllocationAlreadyExistsError,
    AllocationExceedsUnallocatedError,
    AllocationNotFoundError,
    CurrencyMismatchError,
    DateBeforeStartError,
    DisbursementExceedsAvailableError,
    DomainError,
    InitiativeAlreadyRegisteredError,
    InitiativeClosedError,
    InitiativeNotFoundError,
    InsufficientUnitsError,
    MilestoneAlreadyReachedError,
    PartnershipAlreadyEstablishedError,
    PartnershipNotEstablishedError,
    PledgeBelowCommitmentsError,
    PledgeUnchangedError,
    ReceiptExceedsPledgeError,
    ReleaseExceedsAllocationError,
    SealError,
    YearNotPledgedError,
)
from homeledger.domain.money import CENT, ZERO, fmt
from homeledger.domain.portfolio import Portfolio, compute_pledge


@dataclass(frozen=True)
class Partnership:
    donor: str
    beneficiary: str
    rate: Decimal
    currency: str
    basis: str
    start_date: date


@dataclass
class Allocation:
    allocation_id: str
    initiative: str
    year: int
    amount: Decimal
    released: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.released


@dataclass
class Initiative:
    initiative: str
    name: str
    country: str
    programme: str
    closed_on: date | None = None
    allocated: Decimal = ZERO
    released: Decimal = ZERO
    disbursed: Decimal = ZERO
    milestones: set[str] = field(default_factory=set)

    @property
    def available(self) -> Decimal:
        """Allocated, not released and not yet disbursed."""
        return self.allocated - self.released - self.disbursed


@dataclass
class YearBook:
    """Money of one pledge year."""

    pledged: Decimal = ZERO
    unit_basis: int = 0
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


Decider = Callable[["Ledger", Any, date], list[e.DomainEvent]]
_DECIDERS: dict[type[c.Command], Decider] = {}
_APPLIERS: dict[type[e.DomainEvent], Callable[[Ledger, Any], None]] = {}
C = TypeVar("C", bound=c.Command)
E = TypeVar("E", bound=e.DomainEvent)


def _decides(
    command: type[C],
) -> Callable[[Callable[[Ledger, C, date], list[e.DomainEvent]]], Any]:
    def register(func: Callable[[Ledger, C, date], list[e.DomainEvent]]) -> Any:
        _DECIDERS[command] = func
        return func

    return register


def _applies(event: type[E]) -> Callable[[Callable[[Ledger, E], None]], Any]:
    def register(func: Callable[[Ledger, E], None]) -> Any:
        _APPLIERS[event] = func
        return func

    return register


@dataclass
class Ledger:
    """The state every rule needs, rebuilt from the facts."""

    partnership: Partnership | None = None
    portfolio: Portfolio = field(default_factory=Portfolio)
    years: dict[int, YearBook] = field(default_factory=dict)
    initiatives: dict[str, Initiative] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)
    disbursed: Decimal = ZERO
    last_seal_position: int = 0

    def decide(self, command: c.Command, today: date) -> list[e.DomainEvent]:
        """The facts a command records, or a DomainError naming the broken rule."""
        decider = _DECIDERS[type(command)]
        if not isinstance(command, c.EstablishPartnership):
            self._terms()
        if isinstance(command, c.MoneyCommand) and command.currency is not None:
            self._check_currency(command.currency)
        return decider(self, command, today)

    def apply(self, event: e.DomainEvent) -> None:
        _APPLIERS[type(event)](self, event)

    def year(self, year: int) -> YearBook:
        return self.years.get(year) or YearBook()

    # Guards shared by several rules.

    def _terms(self) -> Partnership:
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


# Deciders: one per command.


@_decides(c.EstablishPartnership)
def _establish(ledger: Ledger, cmd: c.EstablishPartnership, today: date) -> list[e.DomainEvent]:
    if ledger.partnership is not None:
        p = ledger.partnership
        raise PartnershipAlreadyEstablishedError(
            f"the partnership of {p.donor} and {p.beneficiary} was already established "
            f"on {p.start_date.isoformat()}; it is established once per ledger"
        )
    return [
        e.PartnershipEstablished(
            donor=cmd.donor,
            beneficiary=cmd.beneficiary,
            rate=cmd.rate,
            currency=cmd.currency,
            basis=cmd.basis,
            start_date=cmd.start,
        )
    ]


@_decides(c.AcquireUnits)
def _acquire(ledger: Ledger, cmd: c.AcquireUnits, today: date) -> list[e.DomainEvent]:
    ledger._not_before_start(cmd.on, "acquisition")
    return [
        e.UnitsAcquired(
            country=cmd.country, units=cmd.units, effective_date=cmd.on, reference=cmd.ref
        )
    ]


@_decides(c.DisposeUnits)
def _dispose(ledger: Ledger, cmd: c.DisposeUnits, today: date) -> list[e.DomainEvent]:
    ledger._not_before_start(cmd.on, "disposal")
    # Later disposals already recorded must stay covered too.
    lowest = ledger.portfolio.lowest_from(cmd.country, cmd.on)
    if cmd.units > lowest:
        held = ledger.portfolio.held(cmd.country, cmd.on)
        later = "" if lowest == held else f" ({lowest} after later disposals)"
        raise InsufficientUnitsError(
            f"disposal of {cmd.units} units in {cmd.country} on {cmd.on.isoformat()} exceeds "
            f"the {held} held then{later} by {cmd.units - lowest}"
        )
    return [
        e.UnitsDisposed(
            country=cmd.country, units=cmd.units, effective_date=cmd.on, reference=cmd.ref
        )
    ]


@_decides(c.PledgeDonation)
def _pledge(ledger: Ledger, cmd: c.PledgeDonation, today: date) -> list[e.DomainEvent]:
    terms = ledger._terms()
    if cmd.year < terms.start_date.year:
        raise DateBeforeStartError(
            f"pledge for {cmd.year} is before the partnership's start year "
            f"{terms.start_date.year}"
        )
    basis = compute_pledge(
        ledger.portfolio, terms.basis, int(terms.rate / CENT), cmd.year, terms.start_date
    )
    amount = Decimal(basis.amount_cents) * CENT
    book = ledger.year(cmd.year)
    delta = amount - book.pledged
    if delta == ZERO:
        raise PledgeUnchangedError(
            f"the {cmd.year} pledge computed from the portfolio is {fmt(amount)}, "
            f"the same as recorded: nothing to adjust"
        )
    for what, figure in (("received", book.received), ("allocated", book.committed)):
        if amount < figure:
            raise PledgeBelowCommitmentsError(
                f"the {cmd.year} pledge would fall to {fmt(amount)}, below the "
                f"{fmt(figure)} already {what}, by {fmt(figure - amount)}"
            )
    return [
        e.DonationPledged(
            year=cmd.year,
            basis=terms.basis,
            unit_basis=basis.unit_basis,
            rate=terms.rate,
            amount=amount,
            delta=delta,
            currency=terms.currency,
        )
    ]


@_decides(c.ReceiveDonation)
def _receive(ledger: Ledger, cmd: c.ReceiveDonation, today: date) -> list[e.DomainEvent]:
    ledger._not_before_start(cmd.on, "receipt")
    book = ledger._pledged_year(cmd.year)
    outstanding = book.pledged - book.received
    if cmd.amount > outstanding:
        raise ReceiptExceedsPledgeError(
            f"receipt of {fmt(cmd.amount)} exceeds the {cmd.year} outstanding pledge of "
            f"{fmt(outstanding)} by {fmt(cmd.amount - outstanding)}"
        )
    return [
        e.DonationReceived(
            year=cmd.year,
            amount=cmd.amount,
            currency=ledger._terms().currency,
            received_on=cmd.on,
        )
    ]


@_decides(c.RegisterInitiative)
def _register(ledger: Ledger, cmd: c.RegisterInitiative, today: date) -> list[e.DomainEvent]:
    if cmd.id in ledger.initiatives:
        raise InitiativeAlreadyRegisteredError(f"initiative {cmd.id!r} is already registered")
    return [
        e.InitiativeRegistered(
            initiative=cmd.id, name=cmd.name, country=cmd.country, programme=cmd.programme
        )
    ]


@_decides(c.CloseInitiative)
def _close(ledger: Ledger, cmd: c.CloseInitiative, today: date) -> list[e.DomainEvent]:
    initiative = ledger._initiative(cmd.id)
    if initiative.closed_on is not None:
        raise InitiativeClosedError(
            f"initiative {cmd.id!r} was already closed on {initiative.closed_on.isoformat()}"
        )
    return [e.InitiativeClosed(initiative=cmd.id, closed_on=cmd.on, reason=cmd.reason)]


@_decides(c.AllocateFunds)
def _allocate(ledger: Ledger, cmd: c.AllocateFunds, today: date) -> list[e.DomainEvent]:
    initiative = ledger._initiative(cmd.initiative)
    if initiative.closed_on is not None:
        raise InitiativeClosedError(
            f"initiative {cmd.initiative!r} was closed on {initiative.closed_on.isoformat()}; "
            "nothing is allocated to it afterwards"
        )
    allocation_id = cmd.allocation_id or str(uuid4())
    if allocation_id in ledger.allocations:
        raise AllocationAlreadyExistsError(f"allocation {allocation_id!r} already exists")
    book = ledger._pledged_year(cmd.year)
    if cmd.amount > book.unallocated:
        raise AllocationExceedsUnallocatedError(
            f"allocation of {fmt(cmd.amount)} exceeds the {cmd.year} unallocated balance of "
            f"{fmt(book.unallocated)} by {fmt(cmd.amount - book.unallocated)}"
        )
    return [
        e.FundsAllocated(
            allocation_id=allocation_id,
            initiative=cmd.initiative,
            year=cmd.year,
            amount=cmd.amount,
            currency=ledger._terms().currency,
        )
    ]


@_decides(c.ReleaseAllocation)
def _release(ledger: Ledger, cmd: c.ReleaseAllocation, today: date) -> list[e.DomainEvent]:
    allocation = ledger.allocations.get(cmd.id)
    if allocation is None:
        raise AllocationNotFoundError(f"allocation {cmd.id!r} does not exist")
    if cmd.amount > allocation.remaining:
        raise ReleaseExceedsAllocationError(
            f"release of {fmt(cmd.amount)} exceeds the {fmt(allocation.remaining)} still "
            f"allocated by {cmd.id!r} by {fmt(cmd.amount - allocation.remaining)}"
        )
    initiative = ledger.initiatives[allocation.initiative]
    if cmd.amount > initiative.available:
        raise ReleaseExceedsAllocationError(
            f"release of {fmt(cmd.amount)} exceeds the {fmt(initiative.available)} of "
            f"{allocation.initiative!r} not yet disbursed by "
            f"{fmt(cmd.amount - initiative.available)}"
        )
    return [
        e.AllocationReleased(
            allocation_id=cmd.id,
            initiative=allocation.initiative,
            year=allocation.year,
            amount=cmd.amount,
            currency=ledger._terms().currency,
            reason=cmd.reason,
        )
    ]


@_decides(c.DisburseFunds)
def _disburse(ledger: Ledger, cmd: c.DisburseFunds, today: date) -> list[e.DomainEvent]:
    ledger._not_before_start(cmd.on, "disbursement")
    initiative = ledger._initiative(cmd.initiative)
    if cmd.amount > initiative.available:
        raise DisbursementExceedsAvailableError(
            f"disbursement of {fmt(cmd.amount)} exceeds the {fmt(initiative.available)} "
            f"allocated to {cmd.initiative!r} and not yet released or disbursed by "
            f"{fmt(cmd.amount - initiative.available)}"
        )
    return [
        e.FundsDisbursed(
            initiative=cmd.initiative,
            amount=cmd.amount,
            currency=ledger._terms().currency,
            disbursed_on=cmd.on,
        )
    ]


@_decides(c.RecordMilestone)
def _milestone(ledger: Ledger, cmd: c.RecordMilestone, today: date) -> list[e.DomainEvent]:
    initiative = ledger._initiative(cmd.initiative)
    if cmd.name in initiative.milestones:
        raise MilestoneAlreadyReachedError(
            f"milestone {cmd.name!r} of {cmd.initiative!r} was already reached"
        )
    return [
        e.MilestoneReached(
            initiative=cmd.initiative, milestone=cmd.name, reached_on=cmd.on, evidence=cmd.evidence
        )
    ]


@_decides(c.SealLedger)
def _seal(ledger: Ledger, cmd: c.SealLedger, today: date) -> list[e.DomainEvent]:
    if cmd.position <= ledger.last_seal_position:
        raise SealError(
            f"nothing new to seal: the ledger is already sealed up to position "
            f"{ledger.last_seal_position}"
        )
    return [e.LedgerSealed(position=cmd.position, digest=cmd.digest)]


# Appliers: one per fact. They trust the fact: rules were checked when it was decided.


@_applies(e.PartnershipEstablished)
def _on_established(ledger: Ledger, ev: e.PartnershipEstablished) -> None:
    ledger.partnership = Partnership(
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
    book = ledger.years.setdefault(ev.year, YearBook())
    book.pledged = ev.amount
    book.unit_basis = ev.unit_basis


@_applies(e.DonationReceived)
def _on_received(ledger: Ledger, ev: e.DonationReceived) -> None:
    ledger.years.setdefault(ev.year, YearBook()).received += ev.amount


@_applies(e.InitiativeRegistered)
def _on_registered(ledger: Ledger, ev: e.InitiativeRegistered) -> None:
    ledger.initiatives[ev.initiative] = Initiative(
        ev.initiative, ev.name, ev.country, ev.programme
    )


@_applies(e.InitiativeClosed)
def _on_closed(ledger: Ledger, ev: e.InitiativeClosed) -> None:
    ledger.initiatives[ev.initiative].closed_on = ev.closed_on


@_applies(e.FundsAllocated)
def _on_allocated(ledger: Ledger, ev: e.FundsAllocated) -> None:
    ledger.allocations[ev.allocation_id] = Allocation(
        ev.allocation_id, ev.initiative, ev.year, ev.amount
    )
    ledger.years.setdefault(ev.year, YearBook()).allocated += ev.amount
    ledger.initiatives[ev.initiative].allocated += ev.amount


@_applies(e.AllocationReleased)
def _on_released(ledger: Ledger, ev: e.AllocationReleased) -> None:
    ledger.allocations[ev.allocation_id].released += ev.amount
    ledger.years.setdefault(ev.year, YearBook()).released += ev.amount
    ledger.initiatives[ev.initiative].released += ev.amount


@_applies(e.FundsDisbursed)
def _on_disbursed(ledger: Ledger, ev: e.FundsDisbursed) -> None:
    ledger.initiatives[ev.initiative].disbursed += ev.amount
    ledger.disbursed += ev.amount


@_applies(e.MilestoneReached)
def _on_milestone(ledger: Ledger, ev: e.MilestoneReached) -> None:
    ledger.initiatives[ev.initiative].milestones.add(ev.milestone)


@_applies(e.LedgerSealed)
def _on_sealed(ledger: Ledger, ev: e.LedgerSealed) -> None:
    ledger.last_seal_position = ev.position


def replay(facts: list[e.DomainEvent]) -> Ledger:
    ledger = Ledger()
    for fact in facts:
        ledger.apply(fact)
    return ledger


__all__ = ["DomainError", "Ledger", "replay"]
