"""Reversals and effective dates in the domain, worked by hand.

Pure: Ledger.decide, admit and apply with the dates and identities the application
would give them (`Stamp`), no store. Each refusal names its rule and leaves the
ledger exactly as it was.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

import pytest

from homeledger.adapters.ledger_snapshot import ledger_from_dict, ledger_to_dict
from homeledger.domain import commands as c
from homeledger.domain import errors
from homeledger.domain import events as e
from homeledger.domain.errors import DomainError
from homeledger.domain.ledger import Ledger, Stamp, dates_of

START = date(2021, 7, 1)
TODAY = date(2022, 6, 30)
VILLAGE = "gw-bissau-village"


def event_id(position: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"fact-{position}"))


@dataclass
class Book:
    """A ledger recorded as the application records it: each fact decided today, then
    applied with its dates, its event id and its position."""

    today: date = TODAY
    ledger: Ledger = field(default_factory=Ledger)
    facts: list[tuple[int, e.DomainEvent]] = field(default_factory=list)

    def record(self, command: c.Command) -> list[e.DomainEvent]:
        facts = self.ledger.decide(command, self.today)
        for fact in facts:
            position = len(self.facts) + 1
            recorded = replace(dates_of(command, fact, self.today), event_id=event_id(position),
                               position=position)  # fmt: skip
            self.ledger.apply(fact, recorded)
            self.facts.append((position, fact))
        return facts

    def target(self, position: int) -> c.ReversalTarget:
        """What the application hands the ledger for `reverse POSITION`."""
        fact = dict(self.facts)[position]
        return c.ReversalTarget(event_id=event_id(position), type=fact.TYPE, position=position,
                                fact=fact)  # fmt: skip

    def reverse(self, at: int, reason: str = "mistyped", on: date | None = None,
                **target: object) -> list[e.DomainEvent]:  # fmt: skip
        """Reverse the fact at position `at`; `target` changes what is handed over (a
        forger's reversal)."""
        command = c.ReverseFact(id=str(at), reason=reason, on=on)
        resolved = self.target(at).model_copy(update=target)
        return self.record(command.model_copy(update={"target": resolved}))

    def reversal(self, at: int) -> e.DomainEvent:
        """The reversal of the fact at `at`, decided and not recorded."""
        command = c.ReverseFact(id=str(at), reason="x")
        (fact,) = self.ledger.decide(command.model_copy(update={"target": self.target(at)}),
                                     self.today)  # fmt: skip
        return fact

    def position_of(self, kind: type[e.DomainEvent], nth: int = 0) -> int:
        return [p for p, fact in self.facts if type(fact) is kind][nth]


def pro_rata_book() -> Book:
    book = Book()
    book.record(c.EstablishPartnership(donor="Heimstaden", beneficiary="SOS", rate="100.00",
                                       currency="EUR", basis="pro-rata", start=START))  # fmt: skip
    book.record(c.AcquireUnits(country="SE", units=1000, on=START))
    return book


def funded_book() -> Book:
    """Year-end, 1,000 homes: 100,000.00 pledged for 2021; 40,000.00 allocated to the
    village, 25,000.00 received, 10,000.00 disbursed, the solar panels reached."""
    book = Book()
    book.record(c.EstablishPartnership(donor="Heimstaden", beneficiary="SOS", rate="100.00",
                                       currency="EUR", basis="year-end", start=START))  # fmt: skip
    book.record(c.AcquireUnits(country="SE", units=1000, on=START))
    book.record(c.PledgeDonation(year=2021, on=date(2021, 12, 31)))
    book.record(c.RegisterInitiative(id=VILLAGE, name="Bissau", country="GW", programme="care",
                                     on=date(2021, 8, 1)))  # fmt: skip
    book.record(c.AllocateFunds(initiative=VILLAGE, year=2021, amount="40000.00",
                                allocation_id="a-1", on=date(2021, 9, 1)))  # fmt: skip
    book.record(c.ReceiveDonation(year=2021, amount="25000.00", on=date(2021, 12, 15)))
    book.record(c.DisburseFunds(initiative=VILLAGE, amount="10000.00", on=date(2022, 1, 20)))
    book.record(c.RecordMilestone(initiative=VILLAGE, name="solar", on=date(2022, 3, 15)))
    return book


# Hand-worked cases.


def test_a_reversed_acquisition_in_a_pro_rata_year_adjusts_the_next_pledge_by_its_unit_days(
) -> None:  # fmt: skip
    book = pro_rata_book()
    # 200 homes in DE from 1 October: 92 days to 31 December, 18,400 unit-days.
    book.record(c.AcquireUnits(country="DE", units=200, on=date(2021, 10, 1)))
    (first,) = book.record(c.PledgeDonation(year=2021))
    # SE 1,000 x 184 days (1 July - 31 December) + DE 18,400 = 202,400 unit-days;
    # 100.00 x 202,400 / 365 = 55,452.054... -> 55,452.05.
    assert isinstance(first, e.DonationPledged)
    assert (first.unit_basis, first.amount) == (202_400, Decimal("55452.05"))
    (reversal,) = book.reverse(book.position_of(e.UnitsAcquired, 1), reason="never bought")
    assert isinstance(reversal, e.FactReversed)
    assert reversal.reversed_type == "UnitsAcquired" and reversal.original["units"] == 200
    # The pledge recorded stands; the ledger's portfolio no longer holds the 200 homes.
    assert book.ledger.year(2021).pledged == Decimal("55452.05")
    assert book.ledger.portfolio.held("DE", date(2021, 12, 31)) == 0
    (adjustment,) = book.record(c.PledgeDonation(year=2021))
    # 184,000 unit-days: 100.00 x 184,000 / 365 = 50,410.958... -> 50,410.96; the
    # adjustment is the difference of the two rounded totals.
    assert isinstance(adjustment, e.DonationPledged)
    assert adjustment.unit_basis == 184_000 == first.unit_basis - 200 * 92
    assert (adjustment.amount, adjustment.delta) == (Decimal("50410.96"), Decimal("-5041.09"))


def test_a_reversed_acquisition_may_not_leave_a_later_disposal_uncovered() -> None:
    book = pro_rata_book()
    book.record(c.AcquireUnits(country="DE", units=200, on=date(2021, 10, 1)))
    book.record(c.AcquireUnits(country="DE", units=50, on=date(2021, 11, 1)))
    book.record(c.DisposeUnits(country="DE", units=100, on=date(2022, 2, 1)))
    before = copy.deepcopy(book.ledger)
    with pytest.raises(errors.InsufficientUnitsError) as refused:
        book.reverse(book.position_of(e.UnitsAcquired, 1))
    message = str(refused.value)
    assert "200 units in DE on 2021-10-01" in message and "150 are held" in message
    assert "50 too few" in message
    assert book.ledger == before
    # The 50 bought later can go: 200 still cover the disposal of 100.
    book.reverse(book.position_of(e.UnitsAcquired, 2))
    assert book.ledger.portfolio.held("DE", date(2022, 2, 1)) == 100


def test_a_reversed_disposal_gives_the_homes_back() -> None:
    book = pro_rata_book()
    book.record(c.DisposeUnits(country="SE", units=300, on=date(2021, 11, 15)))
    book.reverse(book.position_of(e.UnitsDisposed))
    assert book.ledger.portfolio.held("SE", date(2021, 12, 31)) == 1000


def test_a_mistyped_receipt_reversed_and_recorded_again() -> None:
    book = funded_book()
    # 80,000.00 typed for 8,000.00: within the outstanding 75,000.00? No: refused; a
    # mistype within the pledge is recorded, and then reversed.
    book.record(c.ReceiveDonation(year=2021, amount="70000.00", on=date(2022, 3, 31)))
    assert book.ledger.year(2021).received == Decimal("95000.00")
    with pytest.raises(errors.ReceiptExceedsPledgeError):
        book.record(c.ReceiveDonation(year=2021, amount="7000.00", on=date(2022, 3, 31)))
    book.reverse(book.position_of(e.DonationReceived, 1), reason="70000.00 typed for 7000.00")
    assert book.ledger.year(2021).received == Decimal("25000.00")
    book.record(c.ReceiveDonation(year=2021, amount="7000.00", on=date(2022, 3, 31)))
    assert book.ledger.year(2021).received == Decimal("32000.00")


def test_a_reversed_disbursement_makes_the_money_available_again() -> None:
    book = funded_book()
    assert book.ledger.initiatives[VILLAGE].available == Decimal("30000.00")
    with pytest.raises(errors.DisbursementExceedsAvailableError):
        book.record(c.DisburseFunds(initiative=VILLAGE, amount="40000.00", on=TODAY))
    book.reverse(book.position_of(e.FundsDisbursed), reason="paid to the wrong initiative")
    village = book.ledger.initiatives[VILLAGE]
    assert (village.disbursed, village.available) == (Decimal("0.00"), Decimal("40000.00"))
    book.record(c.DisburseFunds(initiative=VILLAGE, amount="40000.00", on=TODAY))


def test_a_reversed_milestone_can_be_reached_again() -> None:
    book = funded_book()
    solar = c.RecordMilestone(initiative=VILLAGE, name="solar", on=date(2022, 4, 2))
    with pytest.raises(errors.MilestoneAlreadyReachedError):
        book.record(solar)
    book.reverse(book.position_of(e.MilestoneReached), reason="the panels were not connected")
    assert "solar" not in book.ledger.initiatives[VILLAGE].milestones
    (again,) = book.record(solar)
    assert isinstance(again, e.MilestoneReached) and again.reached_on == date(2022, 4, 2)
    # The milestone reached again is a new fact: it can be reversed in its turn.
    book.reverse(book.position_of(e.MilestoneReached, 1))


def test_the_reversal_carries_the_stored_fact_and_its_scope() -> None:
    book = funded_book()
    position = book.position_of(e.DonationReceived)
    (reversal,) = book.reverse(position, reason="duplicate", on=date(2022, 1, 5))
    assert isinstance(reversal, e.FactReversed)
    assert e.event_data(reversal) == {
        "reverses": event_id(position), "reversed_type": "DonationReceived",
        "reversed_position": position, "reason": "duplicate",
        "original": {"year": 2021, "amount": "25000.00", "currency": "EUR",
                     "received_on": "2021-12-15"},
    }  # fmt: skip
    assert reversal.scope() == "2021"  # the reversed fact's scope
    (undo,) = book.reverse(book.position_of(e.FundsDisbursed))
    assert undo.scope() == VILLAGE and e.initiative_of(undo) == VILLAGE
    assert e.effect_date(undo, TODAY) == date(2022, 1, 20)


def test_effective_dates_default_to_the_day_of_recording() -> None:
    book = funded_book()
    command = c.PledgeDonation(year=2022)
    facts = book.ledger.decide(command, TODAY)
    assert dates_of(command, facts[0], TODAY) == Stamp(TODAY, TODAY)
    dated = c.AllocateFunds(initiative=VILLAGE, year=2021, amount="1.00", on=date(2021, 12, 1))
    assert dates_of(dated, book.ledger.decide(dated, TODAY)[0], TODAY).effective_date == date(
        2021, 12, 1
    )
    # A fact with a date of its own keeps it.
    receipt = c.ReceiveDonation(year=2021, amount="1.00", on=date(2021, 12, 20))
    assert dates_of(receipt, book.ledger.decide(receipt, TODAY)[0], TODAY).effective_date == date(
        2021, 12, 20
    )


def test_the_facts_reversed_survive_a_snapshot() -> None:
    book = funded_book()
    book.reverse(book.position_of(e.MilestoneReached))
    ledger = book.ledger
    restored = ledger_from_dict(ledger_to_dict(ledger), ledger.allocations, ledger.recorded)
    assert restored == ledger
    assert restored is not None and restored.reversed == {event_id(8)}
    with pytest.raises(errors.AlreadyReversedError):
        Book(ledger=restored, facts=book.facts).reverse(book.position_of(e.MilestoneReached))


# Refusals of the new rules: what is done first, the refused step, the error and what its
# message names.

Step = Callable[[Book], object]


def _nothing(book: Book) -> None:
    """No step before the refused one."""


def _reverse_receipt(book: Book) -> None:
    book.reverse(book.position_of(e.DonationReceived))


def _reverse_disbursement(book: Book) -> None:
    book.reverse(book.position_of(e.FundsDisbursed))


def _other_data(book: Book) -> None:
    fact = dict(book.facts)[book.position_of(e.DonationReceived)]
    book.reverse(book.position_of(e.DonationReceived),
                 fact=fact.model_copy(update={"amount": Decimal("1.00")}))  # fmt: skip


def _other_type(book: Book) -> None:
    fact = dict(book.facts)[book.position_of(e.UnitsAcquired)]
    book.reverse(book.position_of(e.UnitsAcquired),
                 fact=e.UnitsDisposed(**fact.model_dump()), type="UnitsDisposed")  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    before: Step
    step: Step
    error: type[DomainError]
    figures: tuple[str, ...]


REFUSALS = {
    "not-reversible": Refusal(
        _nothing, lambda book: book.reverse(book.position_of(e.FundsAllocated)),
        errors.NotReversibleError, ("FundsAllocated at position 5", "cannot be reversed")),
    "reversal-of-a-reversal": Refusal(
        _reverse_receipt, lambda book: book.reverse(book.position_of(e.FactReversed)),
        errors.NotReversibleError, ("FactReversed at position 9", "cannot be reversed")),
    "reversed-twice": Refusal(
        _reverse_disbursement, _reverse_disbursement,
        errors.AlreadyReversedError, ("FundsDisbursed at position 7", "already reversed")),
    "unknown-event-id": Refusal(
        _nothing, lambda book: book.reverse(6, event_id=event_id(999)),
        errors.ReversalTargetError, ("no DonationReceived", event_id(999), "at position 6")),
    "forged-data": Refusal(_nothing, _other_data, errors.ReversalTargetError, ("data differ",)),
    "forged-position": Refusal(
        _nothing, lambda book: book.reverse(6, position=3),
        errors.ReversalTargetError, ("no DonationReceived", "recorded at position 3")),
    "forged-type": Refusal(
        _nothing, _other_type, errors.ReversalTargetError, ("type, data differ",)),
    "nothing-looked-up": Refusal(
        _nothing, lambda book: book.record(c.ReverseFact(id="6", reason="no target")),
        errors.ReversalTargetError, ("no recorded fact", "'6'")),
    "pledge-dated-before-start": Refusal(
        _nothing, lambda book: book.record(c.PledgeDonation(year=2022, on=date(2021, 6, 30))),
        errors.DateBeforeStartError, ("pledge dated 2021-06-30", "start on 2021-07-01")),
    "registration-dated-before-start": Refusal(
        _nothing, lambda book: book.record(c.RegisterInitiative(
            id="nl-siblings", name="Siblings", country="NL", programme="care",
            on=date(2020, 1, 1))),
        errors.DateBeforeStartError, ("registration dated 2020-01-01",)),
    "allocation-dated-after-recording": Refusal(
        _nothing, lambda book: book.record(c.AllocateFunds(
            initiative=VILLAGE, year=2021, amount="1.00", on=date(2022, 7, 1))),
        errors.DateAfterRecordingError,
        ("allocation dated 2022-07-01", "after the day it is recorded, 2022-06-30")),
    "acquisition-dated-after-recording": Refusal(
        _nothing, lambda book: book.record(c.AcquireUnits(country="SE", units=1,
                                                          on=date(2022, 7, 1))),
        errors.DateAfterRecordingError, ("acquisition dated 2022-07-01",)),
    "reversal-dated-before-the-fact": Refusal(
        _nothing, lambda book: book.reverse(7, on=date(2022, 1, 19)),
        errors.DateBeforeReversedFactError,
        ("reversal dated 2022-01-19", "FundsDisbursed", "2022-01-20")),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_refusal_names_its_rule_and_changes_nothing(name: str) -> None:
    refusal = REFUSALS[name]
    book = funded_book()
    refusal.before(book)
    before = copy.deepcopy(book.ledger)
    with pytest.raises(refusal.error) as refused:
        refusal.step(book)
    message = str(refused.value)
    missing = [figure for figure in refusal.figures if figure not in message]
    assert not missing, f"{message!r} does not name {missing}"
    assert book.ledger == before


# Facts no command records, as a forger would append them with a correct hash: admit
# refuses each, wherever the facts are replayed.


def test_admit_refuses_a_fact_whose_effective_date_is_not_its_own() -> None:
    book = funded_book()
    fact = e.DonationReceived(year=2021, amount="1.00", currency="EUR",
                              received_on=date(2022, 1, 3))  # fmt: skip
    with pytest.raises(errors.DateMismatchError, match="receipt dated 2022-01-03 is recorded "
                       "as effective on 2022-01-04"):  # fmt: skip
        book.ledger.admit(fact, Stamp(date(2022, 1, 4), TODAY))
    book.ledger.admit(fact, Stamp(date(2022, 1, 3), TODAY))


def test_admit_refuses_a_reversal_that_takes_receipts_below_zero() -> None:
    """A ledger whose figures say less was received than a receipt it holds (a forged
    snapshot, say): reversing that receipt would take the year below zero."""
    book = funded_book()
    reversal = book.reversal(book.position_of(e.DonationReceived))
    short = book.ledger.copy()
    short.years[2021] = replace(short.years[2021], received=Decimal("100.00"))
    with pytest.raises(errors.TotalBelowZeroError, match=r"2021 receipts of 100\.00 below zero "
                       r"by 24900\.00"):  # fmt: skip
        short.admit(reversal)
    book.ledger.admit(reversal)


def test_admit_refuses_a_reversal_that_takes_disbursements_below_zero() -> None:
    book = funded_book()
    reversal = book.reversal(book.position_of(e.FundsDisbursed))
    short = book.ledger.copy()
    short.initiatives[VILLAGE] = replace(short.initiatives[VILLAGE], disbursed=Decimal("0.00"))
    with pytest.raises(errors.TotalBelowZeroError, match=r"below zero by 10000\.00"):
        short.admit(reversal)
    book.ledger.admit(reversal)


def test_admit_refuses_reversing_a_milestone_that_is_not_reached() -> None:
    book = funded_book()
    reversal = book.reversal(book.position_of(e.MilestoneReached))
    bare = book.ledger.copy()
    bare.initiatives[VILLAGE] = replace(bare.initiatives[VILLAGE], milestones=frozenset())
    with pytest.raises(errors.ReversalTargetError, match="'solar' of 'gw-bissau-village' is "
                       "not reached"):  # fmt: skip
        bare.admit(reversal)


def test_a_reversal_of_something_that_is_no_fact_is_no_fact() -> None:
    good = {"year": 2021, "amount": "1.00", "currency": "EUR", "received_on": "2021-12-01"}
    fields = {"reverses": event_id(1), "reversed_type": "DonationReceived",
              "reversed_position": 1, "reason": "x"}  # fmt: skip
    e.FactReversed(**fields, original=good)
    for original in ({**good, "amount": "-1.00"}, {**good, "amount": "1.0"},
                     {k: v for k, v in good.items() if k != "currency"}):  # fmt: skip
        with pytest.raises(ValueError, match=r"original|amount|currency"):
            e.FactReversed(**fields, original=original)
    with pytest.raises(ValueError, match="unknown event type"):
        e.FactReversed(**{**fields, "reversed_type": "Nothing"}, original=good)
    with pytest.raises(ValueError, match="not an event id"):
        e.FactReversed(**{**fields, "reverses": "42"}, original=good)


def test_the_target_cannot_be_given_by_the_operator() -> None:
    with pytest.raises(ValueError, match="'target' cannot be given"):
        c.parse_command({"command": "reverse", "id": "7", "reason": "x",
                         "target": {"event_id": event_id(7)}})  # fmt: skip
    command = c.parse_command({"command": "reverse", "id": " 007 ", "reason": "x"})
    assert isinstance(command, c.ReverseFact) and command.position == 7
    by_id = c.parse_command({"command": "reverse", "id": event_id(7).upper(), "reason": "x"})
    assert isinstance(by_id, c.ReverseFact) and by_id.event_id == event_id(7)
    for bad in ("0", "-3", "seven", "7.5", ""):
        with pytest.raises(ValueError, match="position"):
            c.parse_command({"command": "reverse", "id": bad, "reason": "x"})


def test_a_default_effective_date_is_not_part_of_the_fingerprint() -> None:
    """A command recorded before --on existed keeps its fingerprint (so a repeat of it is
    answered as then), and a repeat on another day is the same command."""
    assert c.PledgeDonation(year=2021).fingerprint() == (
        "8eff6c5cbea25a5483757cacfe923a1006e0eb6415271f883c0cea4c0c37a96d"  # as main made it
    )
    dated = c.PledgeDonation(year=2021, on=date(2021, 12, 31))
    assert dated.fingerprint() != c.PledgeDonation(year=2021).fingerprint()
    target = funded_book().target(6)
    command = c.ReverseFact(id="6", reason="x")
    assert command.model_copy(update={"target": target}).fingerprint() == command.fingerprint()


REVERSAL_ERRORS = {refusal.error for refusal in REFUSALS.values()} | {
    errors.DateMismatchError, errors.TotalBelowZeroError,
}
