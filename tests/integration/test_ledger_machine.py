"""A real ledger application, driven by random commands, against a plain model of the rules.

The model below is written again from the rules (docs/reference.md), with integers of
cents, dicts and a day-by-day count of homes; it shares no code with domain.ledger or
domain.portfolio. Commands carry effective dates (some before the partnership's start,
some after the day of recording) and reversals name recorded facts by position or
event id (some not reversible, some reversed already, some not recorded at all).
The application runs on an SQLite file in a fresh folder per example, its read
models kept up to date step by step beside it.

Checked after every step: the application accepted exactly what the model accepts and
refused the rest with the same named error; each fact carries the data and effective
date the model expects; balances agree; no rule is broken by the live ledger; a fresh
application on the same store, and a plain replay of the stored facts, rebuild the
same ledger; the version counts the accepted facts; a repeated command id records
nothing and answers as the first time did; the read models kept step by step equal a
rebuild (`verify`). Now and then a read as of a random position (and of the facts
effective on or before a random date) equals a fresh replay of those facts.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import event, settings
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
from homeledger.domain.events import effect_date
from homeledger.domain.ledger import Ledger
from homeledger.projections.as_of import PointInTime, UnknownInitiativeError
from homeledger.projections.db import ProjectionDB
from homeledger.projections.read_models import ReadModels
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.verify import verify
from tests import strategies as s
from tests.helpers import StepClock

ACTOR = "machine@example.org"
SNAPSHOT_EVERY = 7  # small, so that fresh applications start from snapshots too
# Every example records on one day, within the dates drawn (2021-2024): a date after it
# is refused, as a date before the partnership's start is.
TODAY = date(2024, 6, 30)
CLOCK_START = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)
REVERSIBLE = ("UnitsAcquired", "UnitsDisposed", "DonationReceived", "FundsDisbursed",
              "MilestoneReached")  # fmt: skip
# The data field holding a fact's own date, for the types that have one.
OWN_DATES = {"PartnershipEstablished": "start_date", "UnitsAcquired": "effective_date",
             "UnitsDisposed": "effective_date", "DonationReceived": "received_on",
             "FundsDisbursed": "disbursed_on", "MilestoneReached": "reached_on",
             "InitiativeClosed": "closed_on"}  # fmt: skip
READ_DATES = (date(2021, 6, 30), date(2021, 12, 31), date(2022, 7, 1), date(2024, 6, 30))


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


@dataclass
class Fact:
    """A recorded fact as the model knows it."""

    position: int
    event_id: str
    type: str
    data: dict[str, Any]
    reversed: bool = False

    @property
    def own_date(self) -> date | None:
        name = OWN_DATES.get(self.type)
        return None if name is None else date.fromisoformat(self.data[name])


def _cents(amount: Any) -> int:
    """Cents of an amount: a Decimal, or its two-decimal wire form."""
    return int(Decimal(str(amount)).scaleb(2))


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
        self.log: dict[int, Fact] = {}  # by position

    def recorded(self, envelope: Envelope) -> None:
        self.log[envelope.position] = Fact(envelope.position, envelope.event_id, envelope.type,
                                           envelope.data)  # fmt: skip

    def target(self, cmd: c.ReverseFact) -> Fact | None:
        """The recorded fact a reversal names, by position or event id."""
        if cmd.position is not None:
            return self.log.get(cmd.position)
        return next((f for f in self.log.values() if f.event_id == cmd.event_id), None)

    @staticmethod
    def effective(cmd: c.Command) -> date:
        """The effective date of the fact a command records."""
        on = getattr(cmd, "on", None)
        return on if on is not None else TODAY

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
        """The error the rules refuse the command with, or None when it is accepted.

        In the order the ledger finds them: the fact a reversal names, the partnership,
        the currency, what the command itself names (an allocation to release, a pledge
        year), the effective date, then the fact's own rules."""
        target = self.target(cmd) if isinstance(cmd, c.ReverseFact) else None
        if isinstance(cmd, c.ReverseFact) and target is None:
            return err.ReversalTargetError
        if isinstance(cmd, c.EstablishPartnership):
            return err.PartnershipAlreadyEstablishedError if self.terms else None
        if self.terms is None:
            return err.PartnershipNotEstablishedError
        currency = getattr(cmd, "currency", None)
        if currency is not None and currency != self.terms.currency:
            return err.CurrencyMismatchError
        if isinstance(cmd, c.ReleaseAllocation) and cmd.id not in self.allocations:
            return err.AllocationNotFoundError
        if isinstance(cmd, c.PledgeDonation) and cmd.year < self.terms.start.year:
            return err.DateBeforeStartError
        on = self.effective(cmd)
        if on < self.terms.start:
            return err.DateBeforeStartError
        if on > TODAY:
            return err.DateAfterRecordingError
        if target is not None:
            own = target.own_date
            if own is not None and on < own:
                return err.DateBeforeReversedFactError
            return self._reversal_refusal(target)
        return self._refusal(cmd, self.terms)

    def _reversal_refusal(self, target: Fact) -> type[DomainError] | None:
        if target.type not in REVERSIBLE:
            return err.NotReversibleError
        if target.reversed:
            return err.AlreadyReversedError
        if target.type == "UnitsAcquired":
            data = target.data
            lowest = self.lowest_from(data["country"], date.fromisoformat(data["effective_date"]))
            return err.InsufficientUnitsError if data["units"] > lowest else None
        return None

    def _refusal(self, cmd: c.Command, terms: Terms) -> type[DomainError] | None:
        if type(cmd) is c.AcquireUnits:
            return None
        if isinstance(cmd, c.DisposeUnits):
            return err.InsufficientUnitsError if cmd.units > self.lowest_from(
                cmd.country, cmd.on) else None  # fmt: skip
        if isinstance(cmd, c.PledgeDonation):
            _, amount = self.pledge(cmd.year)
            if amount == self.pledged.get(cmd.year, 0):
                return err.PledgeUnchangedError
            if amount < self.received.get(cmd.year, 0) or amount < self.committed(cmd.year):
                return err.PledgeBelowCommitmentsError
            return None
        if isinstance(cmd, c.ReceiveDonation):
            if not self.pledged.get(cmd.year):
                return err.YearNotPledgedError
            outstanding = self.pledged[cmd.year] - self.received.get(cmd.year, 0)
            return err.ReceiptExceedsPledgeError if _cents(cmd.amount) > outstanding else None
        if isinstance(cmd, c.RegisterInitiative):
            return err.InitiativeAlreadyRegisteredError if cmd.id in self.initiatives else None
        if isinstance(cmd, c.ReleaseAllocation):
            allocation = self.allocations[cmd.id]
            amount = _cents(cmd.amount)
            if amount > allocation.amount - allocation.released:
                return err.ReleaseExceedsAllocationError
            if amount > self.initiatives[allocation.initiative].available:
                return err.ReleaseExceedsAllocationError
            return None
        slug = cmd.id if isinstance(cmd, c.CloseInitiative) else getattr(cmd, "initiative", None)
        if slug is None:
            raise AssertionError(f"the model does not know {type(cmd).__name__}")
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
        if isinstance(cmd, c.ReverseFact):
            return self.reverse(cmd)
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

    def reverse(self, cmd: c.ReverseFact) -> dict[str, Any]:
        target = self.target(cmd)
        assert target is not None
        target.reversed = True
        data = target.data
        if target.type in ("UnitsAcquired", "UnitsDisposed"):
            sign = 1 if target.type == "UnitsDisposed" else -1
            on = date.fromisoformat(data["effective_date"])
            self.moves.setdefault(data["country"], []).append((on, sign * data["units"]))
        elif target.type == "DonationReceived":
            self.received[data["year"]] -= _cents(data["amount"])
        elif target.type == "FundsDisbursed":
            self.initiatives[data["initiative"]].disbursed -= _cents(data["amount"])
        else:
            self.initiatives[data["initiative"]].milestones.discard(data["milestone"])
        return {"reverses": target.event_id, "reversed_type": target.type,
                "reversed_position": target.position, "reason": cmd.reason, "original": data}


# The machine.


FACT_TYPES = {
    c.EstablishPartnership: "PartnershipEstablished", c.AcquireUnits: "UnitsAcquired",
    c.DisposeUnits: "UnitsDisposed", c.PledgeDonation: "DonationPledged",
    c.ReceiveDonation: "DonationReceived", c.RegisterInitiative: "InitiativeRegistered",
    c.CloseInitiative: "InitiativeClosed", c.AllocateFunds: "FundsAllocated",
    c.ReleaseAllocation: "AllocationReleased", c.DisburseFunds: "FundsDisbursed",
    c.RecordMilestone: "MilestoneReached", c.ReverseFact: "FactReversed",
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
                                 ledger_snapshot_every=SNAPSHOT_EVERY)  # fmt: skip
        self.app = build_application(self.settings, clock=StepClock(CLOCK_START))
        # The read models, kept up to date step by step in small pages and snapshots.
        self.db = ProjectionDB(self.app.store.location)
        self.runner = ProjectionRunner(self.app.store, self.db, page=3, snapshot_every=4)
        self.reader = PointInTime(self.app.store, self.db)
        self.model = Model()
        self.answers: list[tuple[c.Command, list[Envelope]]] = []  # accepted, with an id
        self.last_hash = GENESIS_HASH
        self.last_position = 0
        self.sealed_at = 0
        self.ids = itertools.count(1)

    def teardown(self) -> None:
        self.db.close()
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
        name = type(command).__name__
        if isinstance(command, c.ReverseFact):
            target = self.model.target(command)
            name += f" of {target.type if target else 'nothing'}"
        event(f"{name}: {'accepted' if expected is None else expected.__name__}")
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
        if not isinstance(command, c.EstablishPartnership):
            assert envelope.effective_date == self.model.effective(command)
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
        self.model.recorded(envelope)

    # What the rules draw: mostly what exists, sometimes anything.

    def initiative(self, data: st.DataObject) -> str:
        return pick(data, sorted(self.model.initiatives), s.slugs)

    def year(self, data: st.DataObject) -> int:
        return pick(data, sorted(self.model.pledged), s.years)

    def on(self, data: st.DataObject) -> date:
        """Mostly a date from the start to today; now and then any (before the start,
        after today)."""
        start = self.model.terms.start if self.model.terms else s.FIRST_DAY
        valid = st.dates(min(start, TODAY), TODAY)
        return data.draw(st.one_of(valid, valid, valid, s.dates))

    def maybe_on(self, data: st.DataObject) -> date | None:
        """For a command without a date of its own: often none (today), else a date."""
        return self.on(data) if data.draw(st.integers(0, 2), label="dated") else None

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
            initiative = next(iter(self.model.initiatives))
            allocation = c.AllocateFunds(
                initiative=initiative,
                year=year,
                amount=s.cents_to_str(share),
                allocation_id="a-1",
            )
            self.send(allocation, with_id=True)
            # Some of it received, paid out and put to use: money facts to reverse.
            dated = st.dates(terms.start, TODAY)
            paid = data.draw(st.integers(1, share), label="disbursed")
            for command in (
                c.ReceiveDonation(year=year, on=data.draw(dated), amount=s.cents_to_str(
                    data.draw(st.integers(1, self.model.pledged[year]), label="received"))),
                c.DisburseFunds(initiative=initiative, amount=s.cents_to_str(paid),
                                on=data.draw(dated)),
                c.RecordMilestone(initiative=initiative, name=s.MILESTONES[0],
                                  on=data.draw(dated)),
            ):  # fmt: skip
                self.send(command, with_id=True)

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
        command = c.PledgeDonation(year=self.year(data), on=self.maybe_on(data))
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        year = self.year(data)
        outstanding = self.model.pledged.get(year, 0) - self.model.received.get(year, 0)
        command = c.ReceiveDonation(year=year, amount=data.draw(boundary_amounts(outstanding)),
                                    on=self.on(data), currency=data.draw(currencies))  # fmt: skip
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def register(self, data: st.DataObject) -> None:
        command = data.draw(s.register_initiative())
        self.send(command.model_copy(update={"on": self.maybe_on(data)}), data.draw(with_ids))

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
            currency=data.draw(currencies), on=self.maybe_on(data),
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
                                      currency=data.draw(currencies),
                                      on=self.maybe_on(data))  # fmt: skip
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

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        """Mostly a reversible fact not reversed yet, by position or event id; else any
        recorded fact, or a position or event id that names none."""
        log = self.model.log
        open_ = [f for f in log.values() if f.type in REVERSIBLE and not f.reversed]
        done = [f for f in log.values() if f.reversed]
        fact = pick(data, open_, pick(data, done, pick(data, list(log.values()), None)))
        if fact is None or data.draw(st.integers(0, 9)) == 0:
            ref = data.draw(st.one_of(st.integers(len(log) + 1, len(log) + 5).map(str),
                                      st.uuids().map(str)))  # fmt: skip
        else:
            ref = fact.event_id if data.draw(st.booleans()) else str(fact.position)
        command = c.ReverseFact(id=ref, reason="mistyped", on=self.maybe_on(data))
        self.send(command, data.draw(with_ids))

    @rule(data=st.data())
    def reverse_money(self, data: st.DataObject) -> None:
        """A receipt, a disbursement or a milestone not reversed yet (rarer than homes)."""
        kinds = ("DonationReceived", "FundsDisbursed", "MilestoneReached")
        open_ = [f for f in self.model.log.values() if f.type in kinds and not f.reversed]
        if open_:
            fact = data.draw(st.sampled_from(open_))
            self.send(c.ReverseFact(id=str(fact.position), reason="mistyped",
                                    on=self.maybe_on(data)), data.draw(with_ids))  # fmt: skip

    @rule(data=st.data())
    def read_as_of(self, data: st.DataObject) -> None:
        """A read as of a random position, and of the facts effective on or before a
        random date, equals a fresh replay of exactly those facts."""
        self.runner.catch_up()
        envelopes = list(self.app.store.envelopes())
        n = data.draw(st.integers(0, len(envelopes)), label="as of position")
        day = data.draw(st.none() | s.dates, label="to")
        fresh = ReadModels()
        for envelope in envelopes[:n]:
            if day is None or effect_date(envelope.fact, envelope.effective_date) <= day:
                fresh.apply(envelope)
        balances = self.reader.balances(n, day)
        for by in ("year", "initiative", "country"):
            assert balances.rows(by) == fresh.balance_rows(by), (by, n, day)
        assert balances.rows("initiative", 2022) == fresh.balance_rows("initiative", 2022)
        for slug in s.SLUGS:
            try:
                trail = self.reader.audit_rows(slug, n, day)
            except UnknownInitiativeError:
                trail = []
            assert trail == fresh.audit_rows(slug), (slug, n, day)
        if day is None:
            assert self.reader.trial_balance(n).to_dict() == fresh.trial_balance().to_dict()
            for on in READ_DATES:
                assert self.reader.portfolio(n, on) == fresh.portfolio(on)

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
        assert envelope.effective_date == TODAY
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
    def no_rule_is_broken(self) -> None:
        """Whatever was accepted, the live ledger is within every rule."""
        ledger = self.live().ledger
        for year, book in ledger.years.items():
            assert 0 <= book.received <= book.pledged, year
            assert 0 <= book.committed <= book.pledged, year
        for slug, initiative in ledger.initiatives.items():
            assert initiative.disbursed >= 0 and initiative.available >= 0, slug
        for key in self.model.allocations:
            allocation = ledger.allocations[key]
            assert 0 <= allocation.released <= allocation.amount, key
        for country, entries in ledger.portfolio.changes.items():
            for on, _ in entries:
                assert ledger.portfolio.held(country, on) >= 0, (country, on)
        assert {f.event_id for f in self.model.log.values() if f.reversed} == ledger.reversed

    @invariant()
    def read_models_kept_step_by_step_equal_a_rebuild(self) -> None:
        self.runner.catch_up()
        report = verify(self.app.store, self.db, self.runner)
        assert report.ok, report.to_dict()
        # And they say what the model says.
        model, balances = self.model, self.reader.balances(self.app.store.max_position())
        assert {row["year"]: (_cents(row["pledged"]), _cents(row["received"]),
                              _cents(row["allocated"]), _cents(row["released"]))
                for row in balances.rows("year")} == {
            year: (model.pledged.get(year, 0), model.received.get(year, 0),
                   model.allocated.get(year, 0), model.released.get(year, 0))
            for year in set(model.pledged) | set(model.received) | set(model.allocated)
        }  # fmt: skip
        assert {row["initiative"]: _cents(row["disbursed"])
                for row in balances.rows("initiative")} == {
            slug: initiative.disbursed for slug, initiative in model.initiatives.items()
        }  # fmt: skip
        for on in READ_DATES:
            held = {row["country"]: row["units"] for row in self.reader.portfolio(
                self.app.store.max_position(), on)}  # fmt: skip
            expected = {country: model.held(country, on) for country in model.moves}
            assert held == {k: v for k, v in expected.items() if v}, on

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
            rebuilt = fresh.refreshed_state()  # from a snapshot (every 7 facts) and after
            # Allocations and recorded facts are looked up where each store keeps them:
            # compare what they find (while the fresh store is open).
            assert {key: rebuilt.ledger.allocations.get(key) for key in self.model.allocations
                    } == {key: live.ledger.allocations.get(key)
                          for key in self.model.allocations}  # fmt: skip
            assert {p: rebuilt.ledger.recorded.get(p) for p in self.model.log} == {
                p: live.ledger.recorded.get(p) for p in self.model.log}  # fmt: skip
        finally:
            fresh.store.close()
        assert (rebuilt.version, rebuilt.last_hash) == (live.version, live.last_hash)
        assert ledger_to_dict(rebuilt.ledger) == ledger_to_dict(live.ledger)
        assert replace(rebuilt.ledger, allocations=None, recorded=None) == replace(
            live.ledger, allocations=None, recorded=None)  # fmt: skip
        replayed = Ledger()  # every stored fact, with its dates and identity, no snapshot
        for envelope in self.app.store.envelopes():
            replayed.admit(envelope.fact, envelope.stamp())
            replayed.apply(envelope.fact, envelope.stamp())
        assert replace(replayed, allocations=None, recorded=None) == replace(
            live.ledger, allocations=None, recorded=None)  # fmt: skip
        for position in self.model.log:  # what a reversal finds: in memory, or in the store
            assert replayed.recorded.get(position) == live.ledger.recorded.get(position)


TestLedgerMachine = LedgerMachine.TestCase
# max_examples and the rest come from the loaded profile (conftest.py).
TestLedgerMachine.settings = settings(stateful_step_count=40)
