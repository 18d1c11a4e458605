"""A real ledger application, driven by random commands, against a plain model of the rules.

The model below is written again from the rules (docs/reference.md), with integers of
cents, dicts and a day-by-day count of homes; it shares no code with domain.ledger or
domain.portfolio.
The application runs on an SQLite file in a fresh folder per example.

Checked after every step: the application accepted exactly what the model accepts and
refused the rest with the same named error; balances agree; a fresh application on
the same store rebuilds the same ledger; the version counts the accepted facts; a
repeated command id records nothing and answers as the first time did.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from homeledger.adapters.envelope import Envelope
from homeledger.adapters.hash_chain import GENESIS_HASH, chain_hash
from homeledger.adapters.ledger_snapshot import ledger_to_dict
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import DecisionState
from homeledger.cli.bootstrap import build_application
from homeledger.domain import commands as c
from homeledger.domain import errors as err
from homeledger.domain.errors import DomainError
from tests import strategies as s
from tests.helpers import StepClock

ACTOR = "machine@example.org"
SNAPSHOT_EVERY = 7  # small, so that fresh applications start from snapshots too


# The model.


@dataclass
class Terms:
    rate: int  # cents per home per year
    currency: str
    basis: str
    start: date


@dataclass
class Initiative:
    closed: bool = False
    allocated: int = 0
    released: int = 0
    disbursed: int = 0
    milestones: set[str] = field(default_factory=set)

    @property
    def available(self) -> int:
        return self.allocated - self.released - self.disbursed


@dataclass
class Allocation:
    initiative: str
    year: int
    amount: int
    released: int = 0


def _cents(amount: Any) -> int:
    whole, _, part = f"{amount:f}".partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


class Model:
    """The rules in plain Python: what is accepted, what is refused, what it sums to."""

    def __init__(self) -> None:
        self.terms: Terms | None = None
        self.moves: dict[str, list[tuple[date, int]]] = {}  # country -> (date, +/- homes)
        self.pledged: dict[int, int] = {}
        self.unit_basis: dict[int, int] = {}
        self.received: dict[int, int] = {}
        self.allocated: dict[int, int] = {}
        self.released: dict[int, int] = {}
        self.initiatives: dict[str, Initiative] = {}
        self.allocations: dict[str, Allocation] = {}
        self.facts = 0
        self.commands: dict[str, c.Command] = {}  # accepted command ids

    # Questions.

    def held(self, country: str, day: date) -> int:
        return sum(units for on, units in self.moves.get(country, []) if on <= day)

    def lowest_from(self, country: str, day: date) -> int:
        later = [on for on, _ in self.moves.get(country, []) if on > day]
        return min(self.held(country, on) for on in [day, *later])

    def pledge(self, year: int) -> tuple[int, int]:
        """(unit basis, amount in cents) of the year, from the homes held."""
        assert self.terms is not None
        last = date(year, 12, 31)
        if self.terms.basis == "year-end":
            homes = sum(self.held(country, last) for country in self.moves)
            return homes, homes * self.terms.rate
        per_day: Counter[date] = Counter()
        for moves in self.moves.values():
            for on, units in moves:
                per_day[on] += units
        day = max(date(year, 1, 1), self.terms.start)
        homes = sum(units for on, units in per_day.items() if on < day)
        unit_days = 0
        while day <= last:
            homes += per_day[day]
            unit_days += homes
            day += timedelta(days=1)
        days = (last - date(year, 1, 1)).days + 1
        return unit_days, round(Fraction(self.terms.rate * unit_days, days))  # half-even

    def committed(self, year: int) -> int:
        return self.allocated.get(year, 0) - self.released.get(year, 0)

    def refusal(self, cmd: c.Command) -> type[DomainError] | None:
        """The error the rules refuse the command with, or None when it is accepted."""
        if isinstance(cmd, c.EstablishPartnership):
            return err.PartnershipAlreadyEstablishedError if self.terms else None
        if self.terms is None:
            return err.PartnershipNotEstablishedError
        currency = getattr(cmd, "currency", None)
        if currency is not None and currency != self.terms.currency:
            return err.CurrencyMismatchError
        return self._refusal(cmd, self.terms)

    def _refusal(self, cmd: c.Command, terms: Terms) -> type[DomainError] | None:
        early = getattr(cmd, "on", terms.start) < terms.start
        if type(cmd) is c.AcquireUnits:
            return err.DateBeforeStartError if early else None
        if isinstance(cmd, c.DisposeUnits):
            if early:
                return err.DateBeforeStartError
            return err.InsufficientUnitsError if cmd.units > self.lowest_from(
                cmd.country, cmd.on) else None  # fmt: skip
        if isinstance(cmd, c.PledgeDonation):
            if cmd.year < terms.start.year:
                return err.DateBeforeStartError
            _, amount = self.pledge(cmd.year)
            if amount == self.pledged.get(cmd.year, 0):
                return err.PledgeUnchangedError
            if amount < self.received.get(cmd.year, 0) or amount < self.committed(cmd.year):
                return err.PledgeBelowCommitmentsError
            return None
        if isinstance(cmd, c.ReceiveDonation):
            if early:
                return err.DateBeforeStartError
            if not self.pledged.get(cmd.year):
                return err.YearNotPledgedError
            outstanding = self.pledged[cmd.year] - self.received.get(cmd.year, 0)
            return err.ReceiptExceedsPledgeError if _cents(cmd.amount) > outstanding else None
        if isinstance(cmd, c.RegisterInitiative):
            return err.InitiativeAlreadyRegisteredError if cmd.id in self.initiatives else None
        if isinstance(cmd, c.ReleaseAllocation):
            allocation = self.allocations.get(cmd.id)
            if allocation is None:
                return err.AllocationNotFoundError
            amount = _cents(cmd.amount)
            if amount > allocation.amount - allocation.released:
                return err.ReleaseExceedsAllocationError
            if amount > self.initiatives[allocation.initiative].available:
                return err.ReleaseExceedsAllocationError
            return None
        slug = cmd.id if isinstance(cmd, c.CloseInitiative) else getattr(cmd, "initiative", None)
        if slug is None:
            raise AssertionError(f"the model does not know {type(cmd).__name__}")
        if isinstance(cmd, c.DisburseFunds) and early:
            return err.DateBeforeStartError
        initiative = self.initiatives.get(slug)
        if initiative is None:
            return err.InitiativeNotFoundError
        if isinstance(cmd, c.CloseInitiative):
            return err.InitiativeClosedError if initiative.closed else None
        if isinstance(cmd, c.RecordMilestone):
            return err.MilestoneAlreadyReachedError if cmd.name in initiative.milestones else None
        if isinstance(cmd, c.DisburseFunds):
            too_much = _cents(cmd.amount) > initiative.available
            return err.DisbursementExceedsAvailableError if too_much else None
        assert isinstance(cmd, c.AllocateFunds)
        if initiative.closed:
            return err.InitiativeClosedError
        if cmd.allocation_id is not None and cmd.allocation_id in self.allocations:
            return err.AllocationAlreadyExistsError
        if not self.pledged.get(cmd.year):
            return err.YearNotPledgedError
        unallocated = self.pledged[cmd.year] - self.committed(cmd.year)
        return err.AllocationExceedsUnallocatedError if _cents(cmd.amount) > unallocated else None

    # Changes: each returns the `data` the recorded fact must carry.

    def accept(self, cmd: c.Command, allocation_id: str) -> dict[str, Any]:
        self.facts += 1
        if cmd.command_id:
            self.commands[cmd.command_id] = cmd
        if isinstance(cmd, c.EstablishPartnership):
            self.terms = Terms(_cents(cmd.rate), cmd.currency, cmd.basis, cmd.start)
            return {"donor": cmd.donor, "beneficiary": cmd.beneficiary, "basis": cmd.basis,
                    "rate": s.cents_to_str(self.terms.rate), "currency": cmd.currency,
                    "start_date": cmd.start.isoformat()}  # fmt: skip
        assert self.terms is not None
        currency = self.terms.currency
        if isinstance(cmd, c.AcquireUnits):
            sign = -1 if isinstance(cmd, c.DisposeUnits) else 1
            self.moves.setdefault(cmd.country, []).append((cmd.on, sign * cmd.units))
            return {"country": cmd.country, "units": cmd.units, "reference": cmd.ref,
                    "effective_date": cmd.on.isoformat()}  # fmt: skip
        if isinstance(cmd, c.PledgeDonation):
            unit_basis, amount = self.pledge(cmd.year)
            delta = amount - self.pledged.get(cmd.year, 0)
            self.pledged[cmd.year], self.unit_basis[cmd.year] = amount, unit_basis
            return {"year": cmd.year, "basis": self.terms.basis, "unit_basis": unit_basis,
                    "rate": s.cents_to_str(self.terms.rate), "amount": s.cents_to_str(amount),
                    "delta": s.cents_to_str(delta), "currency": currency}  # fmt: skip
        if isinstance(cmd, c.RegisterInitiative):
            self.initiatives[cmd.id] = Initiative()
            return {"initiative": cmd.id, "name": cmd.name, "country": cmd.country,
                    "programme": cmd.programme}  # fmt: skip
        if isinstance(cmd, c.CloseInitiative):
            self.initiatives[cmd.id].closed = True
            return {"initiative": cmd.id, "closed_on": cmd.on.isoformat(), "reason": cmd.reason}
        if isinstance(cmd, c.RecordMilestone):
            self.initiatives[cmd.initiative].milestones.add(cmd.name)
            return {"initiative": cmd.initiative, "milestone": cmd.name,
                    "reached_on": cmd.on.isoformat(), "evidence": cmd.evidence}  # fmt: skip
        amount = _cents(cmd.amount)  # type: ignore[attr-defined]
        money = {"amount": s.cents_to_str(amount), "currency": currency}
        if isinstance(cmd, c.ReceiveDonation):
            self.received[cmd.year] = self.received.get(cmd.year, 0) + amount
            return {**money, "year": cmd.year, "received_on": cmd.on.isoformat()}
        if isinstance(cmd, c.AllocateFunds):
            self.allocations[allocation_id] = Allocation(cmd.initiative, cmd.year, amount)
            self.allocated[cmd.year] = self.allocated.get(cmd.year, 0) + amount
            self.initiatives[cmd.initiative].allocated += amount
            return {**money, "allocation_id": allocation_id, "initiative": cmd.initiative,
                    "year": cmd.year}  # fmt: skip
        if isinstance(cmd, c.ReleaseAllocation):
            allocation = self.allocations[cmd.id]
            allocation.released += amount
            self.released[allocation.year] = self.released.get(allocation.year, 0) + amount
            self.initiatives[allocation.initiative].released += amount
            return {**money, "allocation_id": cmd.id, "initiative": allocation.initiative,
                    "year": allocation.year, "reason": cmd.reason}  # fmt: skip
        assert isinstance(cmd, c.DisburseFunds)
        self.initiatives[cmd.initiative].disbursed += amount
        return {**money, "initiative": cmd.initiative, "disbursed_on": cmd.on.isoformat()}


# The machine.


FACT_TYPES = {
    c.EstablishPartnership: "PartnershipEstablished", c.AcquireUnits: "UnitsAcquired",
    c.DisposeUnits: "UnitsDisposed", c.PledgeDonation: "DonationPledged",
    c.ReceiveDonation: "DonationReceived", c.RegisterInitiative: "InitiativeRegistered",
    c.CloseInitiative: "InitiativeClosed", c.AllocateFunds: "FundsAllocated",
    c.ReleaseAllocation: "AllocationReleased", c.DisburseFunds: "FundsDisbursed",
    c.RecordMilestone: "MilestoneReached",
}  # fmt: skip


def boundary_amounts(limit: int) -> st.SearchStrategy[str]:
    """Exactly the limit, one cent over it, part of it, or anything up to 20,000.00."""
    limit = max(limit, 0)
    choices = st.one_of(
        st.just(max(limit, 1)),
        st.just(limit + 1),
        st.integers(1, max(limit // 2, 1)),
        s.cents(1, 2_000_000),
    )
    return choices.map(s.cents_to_str)


def pick(data: st.DataObject, preferred: list[Any], other: Any) -> Any:
    """Mostly one of the preferred values (when there are any), else `other`.

    `other` is a value or a strategy to draw one from.
    """
    fallback = other if isinstance(other, st.SearchStrategy) else st.just(other)
    if not preferred:
        return data.draw(fallback)
    chosen = st.sampled_from(preferred)
    return data.draw(st.one_of(chosen, chosen, fallback))


with_ids = st.booleans()
# Mostly no currency or the partnership's; now and then another one, to be refused.
currencies = st.integers(0, 9).map(lambda n: "SEK" if n == 7 else s.CURRENCY if n % 3 else None)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="homeledger-machine-"))
        self.settings = Settings(store=f"sqlite:///{self.folder / 'ledger.db'}", actor=ACTOR,
                                 snapshot_every=SNAPSHOT_EVERY)  # fmt: skip
        self.app = build_application(self.settings, clock=StepClock())
        self.model = Model()
        self.answers: list[tuple[c.Command, list[Envelope]]] = []  # accepted, with an id
        self.last_hash = GENESIS_HASH
        self.last_position = 0
        self.sealed_at = 0
        self.ids = itertools.count(1)

    def teardown(self) -> None:
        self.app.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # Sending a command to both.

    def send(self, command: c.Command, with_id: bool) -> None:
        if with_id and command.command_id is None:
            command = command.model_copy(update={"command_id": f"cmd-{next(self.ids)}"})
        first = self.model.commands.get(command.command_id or "")
        if first is not None:
            self.send_again(command, first)
            return
        expected = self.model.refusal(command)
        try:
            envelopes = self.app.execute(command)
        except DomainError as refused:
            assert expected is not None, f"refused what the rules allow: {refused}"
            assert type(refused) is expected, f"{refused!r} where {expected.__name__} was due"
            return
        assert expected is None, f"accepted {command!r}, refused by {expected.__name__}"
        assert len(envelopes) == 1
        (envelope,) = envelopes
        data = self.model.accept(command, str(envelope.data.get("allocation_id")))
        self.check_envelope(envelope, FACT_TYPES[type(command)], data, command.command_id)
        if command.command_id:
            self.answers.append((command, envelopes))

    def send_again(self, command: c.Command, first: c.Command) -> None:
        same = type(command) is type(first) and command.model_dump() == first.model_dump()
        facts = self.model.facts
        try:
            answer = self.app.execute(command)
        except err.CommandIdReusedError:
            assert not same, "a repeat of the same command was refused"
            return
        assert same, "a different command under a used command id was accepted"
        assert answer == next(envs for cmd, envs in self.answers if cmd is first)
        assert self.app.store.max_position() == self.last_position
        assert self.model.facts == facts

    def check_envelope(
        self, envelope: Envelope, fact_type: str, data: dict[str, Any], command_id: str | None
    ) -> None:
        assert envelope.type == fact_type
        assert envelope.data == {**envelope.data, **data}, (envelope.data, data)
        assert envelope.aggregate_version == self.model.facts
        assert envelope.position > self.last_position
        assert envelope.prev_hash == self.last_hash
        assert envelope.hash == chain_hash(envelope.body())
        assert envelope.actor == ACTOR
        if command_id is not None:
            assert envelope.command_id == command_id
        self.last_hash, self.last_position = envelope.hash, envelope.position

    # What the rules draw: mostly what exists, sometimes anything.

    def initiative(self, data: st.DataObject) -> str:
        return pick(data, sorted(self.model.initiatives), s.slugs)

    def year(self, data: st.DataObject) -> int:
        return pick(data, sorted(self.model.pledged), s.years)

    def on(self, data: st.DataObject) -> date:
        start = self.model.terms.start if self.model.terms else s.FIRST_DAY
        after_start = st.dates(start, s.LAST_DAY)
        return data.draw(st.one_of(after_start, after_start, s.dates))

    # Rules.

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        if not data.draw(st.integers(0, 9), label="established"):
            return  # one time in ten, the ledger starts without a partnership
        terms = data.draw(s.establish_partnership(rate=s.amounts(100, 20_000)), label="init")
        self.send(terms, with_id=True)
        # Homes from the first day on, some bought later; initiatives; the first pledge.
        first = c.AcquireUnits(country=data.draw(s.countries), on=terms.start,
                               units=data.draw(st.integers(1, 500)))  # fmt: skip
        more = s.acquire_units(units=st.integers(1, 500), on=st.dates(terms.start, s.LAST_DAY))
        for command in [first, *data.draw(st.lists(more, max_size=3), label="homes")]:
            self.send(command, with_id=True)
        registers = st.lists(s.register_initiative(), min_size=1, max_size=3)
        for command in data.draw(registers, label="initiatives"):
            self.send(command, with_id=True)
        year = terms.start.year
        self.send(c.PledgeDonation(year=year), with_id=True)
        if self.model.pledged.get(year):  # and part of it allocated, to have money to move
            share = data.draw(st.integers(1, self.model.pledged[year]), label="allocation")
            allocation = c.AllocateFunds(
                initiative=next(iter(self.model.initiatives)),
                year=year,
                amount=s.cents_to_str(share),
                allocation_id="a-1",
            )
            self.send(allocation, with_id=True)

    @rule(data=st.data())
    def establish(self, data: st.DataObject) -> None:
        self.send(data.draw(s.establish_partnership()), data.draw(with_ids))

    @rule(data=st.data())
    def acquire(self, data: st.DataObject) -> None:
        command = c.AcquireUnits(country=data.draw(s.countries), on=self.on(data),
                                 units=data.draw(s.unit_counts))  # fmt: skip
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def dispose(self, data: st.DataObject) -> None:
        country, on = data.draw(s.countries), self.on(data)
        lowest = self.model.lowest_from(country, on)
        units = data.draw(st.one_of(st.just(max(lowest, 1)), st.just(lowest + 1), s.unit_counts))
        self.send(c.DisposeUnits(country=country, units=units, on=on), data.draw(with_ids))

    @rule(data=st.data())
    def pledge(self, data: st.DataObject) -> None:
        self.send(c.PledgeDonation(year=self.year(data)), data.draw(with_ids))

    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        year = self.year(data)
        outstanding = self.model.pledged.get(year, 0) - self.model.received.get(year, 0)
        command = c.ReceiveDonation(year=year, amount=data.draw(boundary_amounts(outstanding)),
                                    on=self.on(data), currency=data.draw(currencies))  # fmt: skip
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def register(self, data: st.DataObject) -> None:
        self.send(data.draw(s.register_initiative()), data.draw(with_ids))

    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        # Any of the five: closing is final, so not mostly the registered ones.
        command = c.CloseInitiative(id=data.draw(s.slugs), on=self.on(data))
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def allocate(self, data: st.DataObject) -> None:
        year = self.year(data)
        unallocated = self.model.pledged.get(year, 0) - self.model.committed(year)
        command = c.AllocateFunds(
            initiative=self.initiative(data), year=year,
            amount=data.draw(boundary_amounts(unallocated)),
            allocation_id=data.draw(st.none() | s.allocation_ids),
            currency=data.draw(currencies),
        )  # fmt: skip
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        open_ = [key for key, a in self.model.allocations.items() if a.amount > a.released]
        made = list(self.model.allocations)  # in the order made: ids may be random uuids
        allocation_id = pick(data, open_, pick(data, made, s.allocation_ids))
        allocation = self.model.allocations.get(allocation_id)
        limit = 0
        if allocation is not None:
            remaining = allocation.amount - allocation.released
            available = self.model.initiatives[allocation.initiative].available
            limit = data.draw(st.sampled_from([remaining, available]))
        amount = data.draw(boundary_amounts(limit))
        command = c.ReleaseAllocation(id=allocation_id, amount=amount, reason="re-planned",
                                      currency=data.draw(currencies))  # fmt: skip
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def disburse(self, data: st.DataObject) -> None:
        funded = [slug for slug, i in self.model.initiatives.items() if i.available > 0]
        initiative = pick(data, funded, self.initiative(data))
        known = self.model.initiatives.get(initiative)
        amount = data.draw(boundary_amounts(known.available if known else 0))
        command = c.DisburseFunds(initiative=initiative, amount=amount, on=self.on(data),
                                  currency=data.draw(currencies))  # fmt: skip
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def milestone(self, data: st.DataObject) -> None:
        command = c.RecordMilestone(initiative=self.initiative(data), on=self.on(data),
                                    name=data.draw(st.sampled_from(s.MILESTONES)))  # fmt: skip
        self.send(command, data.draw(with_ids))

    @precondition(lambda self: self.answers)
    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        command, _ = data.draw(st.sampled_from(self.answers))
        self.send(command, with_id=True)

    @precondition(lambda self: self.answers)
    @rule(data=st.data())
    def reuse_command_id(self, data: st.DataObject) -> None:
        command, _ = data.draw(st.sampled_from(self.answers))
        other = data.draw(s.ledger_commands())
        self.send(other.model_copy(update={"command_id": command.command_id}), with_id=True)

    @precondition(lambda self: self.model.facts == 0 or self.model.facts >= self.sealed_at + 5)
    @rule(data=st.data())
    def seal(self, data: st.DataObject) -> None:
        if self.model.terms is None:
            try:
                self.app.seal()
            except err.PartnershipNotEstablishedError:
                return
            raise AssertionError("sealed a ledger without a partnership")
        (envelope,) = self.app.seal()
        position = self.last_position
        self.model.facts += 1
        self.check_envelope(envelope, "LedgerSealed", {"position": position}, None)
        self.sealed_at = self.model.facts

    # Invariants.

    def live(self) -> DecisionState:
        # The application's cached state: what it decides the next command against.
        return self.app.state()

    @invariant()
    def balances_agree(self) -> None:
        ledger, model = self.live().ledger, self.model
        for year in set(ledger.years) | set(model.pledged) | set(model.received):
            book = ledger.year(year)
            assert (_cents(book.pledged), _cents(book.received), _cents(book.allocated),
                    _cents(book.released)) == (
                model.pledged.get(year, 0), model.received.get(year, 0),
                model.allocated.get(year, 0), model.released.get(year, 0)), year  # fmt: skip
        assert set(ledger.initiatives) == set(model.initiatives)
        for slug, mine in model.initiatives.items():
            theirs = ledger.initiatives[slug]
            assert (_cents(theirs.allocated), _cents(theirs.released),
                    _cents(theirs.disbursed)) == (
                mine.allocated, mine.released, mine.disbursed), slug  # fmt: skip
            assert (theirs.closed_on is not None, theirs.milestones) == (
                mine.closed, mine.milestones)  # fmt: skip
        assert {key: (a.initiative, a.year, _cents(a.amount), _cents(a.released))
                for key, a in ((k, ledger.allocations[k]) for k in model.allocations)} == {
            key: (a.initiative, a.year, a.amount, a.released)
            for key, a in model.allocations.items()}  # fmt: skip
        for country, moves in model.moves.items():
            for on, _ in moves:
                for day in (on - timedelta(days=1), on):
                    assert ledger.portfolio.held(country, day) == model.held(country, day)

    @invariant()
    def version_counts_accepted_facts(self) -> None:
        head = self.live()
        assert head.version == self.model.facts
        assert head.last_hash == self.last_hash

    @invariant()
    def fresh_application_rebuilds_the_live_ledger(self) -> None:
        live = self.live()
        fresh = build_application(self.settings, create=False, clock=StepClock())
        try:
            rebuilt = fresh.refreshed_state()
        finally:
            fresh.store.close()
        assert (rebuilt.version, rebuilt.last_hash) == (live.version, live.last_hash)
        assert ledger_to_dict(rebuilt.ledger) == ledger_to_dict(live.ledger)
        # Allocations are looked up where each store keeps them: compare what they find.
        assert replace(rebuilt.ledger, allocations=None) == replace(live.ledger, allocations=None)
        assert {key: rebuilt.ledger.allocations.get(key) for key in self.model.allocations} == {
            key: live.ledger.allocations.get(key) for key in self.model.allocations}  # fmt: skip


TestLedgerMachine = LedgerMachine.TestCase
# max_examples and the rest come from the loaded profile (conftest.py).
TestLedgerMachine.settings = settings(stateful_step_count=40)
