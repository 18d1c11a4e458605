"""Every rule of the ledger, refused with its named error and the figures involved.

Pure: Ledger.decide and Ledger.apply only, no store. A refused command must leave the
ledger exactly as it was.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from homeledger.domain import commands as c
from homeledger.domain import errors
from homeledger.domain import events as e
from homeledger.domain.errors import DomainError
from homeledger.domain.ledger import Ledger, replay
from tests.helpers import build, partnership
from tests.unit.test_reversals import REVERSAL_ERRORS

TODAY = date(2021, 9, 1)
START = date(2021, 7, 1)
VILLAGE = "gw-bissau-village"
SIBLINGS = "nl-siblings-together"

INIT = partnership()  # EUR 100.00 per home per year, year-end basis, from START
HOMES = c.AcquireUnits(country="SE", units=1200, on=START)
PLEDGE_2021 = c.PledgeDonation(year=2021)
REGISTER = c.RegisterInitiative(id=VILLAGE, name="Bissau hub", country="GW",
                                programme="family-like care")  # fmt: skip
# 1,200 homes on 31 December x 100.00: 120,000.00 pledged for 2021.
FUNDED = (INIT, HOMES, PLEDGE_2021, REGISTER)
ALLOCATED = (*FUNDED, c.AllocateFunds(initiative=VILLAGE, year=2021, amount="50000.00",
                                      allocation_id="a-1"))  # fmt: skip
DISBURSED = (*ALLOCATED, c.DisburseFunds(initiative=VILLAGE, amount="30000.00", on=TODAY))


def record(ledger: Ledger, command: c.Command) -> list[e.DomainEvent]:
    facts = ledger.decide(command)
    for fact in facts:
        ledger.apply(fact)
    return facts


@dataclass(frozen=True)
class Case:
    setup: tuple[c.Command, ...]
    command: c.Command
    error: type[DomainError]
    figures: tuple[str, ...]


CASES: dict[str, Case] = {
    "nothing-before-init": Case(
        (), HOMES, errors.PartnershipNotEstablishedError, ("no partnership", "homeledger init")
    ),
    "pledge-before-init": Case(
        (), PLEDGE_2021, errors.PartnershipNotEstablishedError, ("no partnership",)
    ),
    "init-twice": Case(
        (INIT,),
        INIT.model_copy(update={"donor": "Other"}),
        errors.PartnershipAlreadyEstablishedError,
        ("Heimstaden", "SOS Children's Villages", "2021-07-01", "once"),
    ),
    "receipt-in-other-currency": Case(
        FUNDED,
        c.ReceiveDonation(year=2021, amount="10.00", on=TODAY, currency="SEK"),
        errors.CurrencyMismatchError,
        ("SEK", "EUR"),
    ),
    "allocation-in-other-currency": Case(
        FUNDED,
        c.AllocateFunds(initiative=VILLAGE, year=2021, amount="10.00", currency="usd"),
        errors.CurrencyMismatchError,
        ("USD", "EUR"),
    ),
    "acquisition-before-start": Case(
        (INIT,),
        c.AcquireUnits(country="SE", units=5, on=date(2021, 6, 30)),
        errors.DateBeforeStartError,
        ("acquisition", "2021-06-30", "2021-07-01"),
    ),
    "disposal-before-start": Case(
        (INIT, HOMES),
        c.DisposeUnits(country="SE", units=5, on=date(2021, 1, 1)),
        errors.DateBeforeStartError,
        ("disposal", "2021-01-01", "2021-07-01"),
    ),
    "pledge-before-start-year": Case(
        (INIT, HOMES),
        c.PledgeDonation(year=2020),
        errors.DateBeforeStartError,
        ("2020", "2021"),
    ),
    "receipt-before-start": Case(
        FUNDED,
        c.ReceiveDonation(year=2021, amount="10.00", on=date(2021, 6, 1)),
        errors.DateBeforeStartError,
        ("receipt", "2021-06-01", "2021-07-01"),
    ),
    "disbursement-before-start": Case(
        ALLOCATED,
        c.DisburseFunds(initiative=VILLAGE, amount="10.00", on=date(2021, 6, 1)),
        errors.DateBeforeStartError,
        ("disbursement", "2021-06-01", "2021-07-01"),
    ),
    "disposal-beyond-held": Case(
        (INIT, HOMES),
        c.DisposeUnits(country="SE", units=1201, on=TODAY),
        errors.InsufficientUnitsError,
        ("1201", "SE", "2021-09-01", "1200 held", "by 1"),
    ),
    "disposal-in-country-never-held": Case(
        (INIT, HOMES),
        c.DisposeUnits(country="DK", units=3, on=TODAY),
        errors.InsufficientUnitsError,
        ("3 units in DK", "the 0 held", "by 3"),
    ),
    "disposal-before-the-acquisition": Case(
        (INIT, c.AcquireUnits(country="NL", units=10, on=date(2021, 9, 1))),
        c.DisposeUnits(country="NL", units=10, on=date(2021, 8, 31)),
        errors.InsufficientUnitsError,
        ("10 units in NL on 2021-08-31", "the 0 held", "by 10"),
    ),
    "receipt-for-unpledged-year": Case(
        FUNDED,
        c.ReceiveDonation(year=2022, amount="10.00", on=TODAY),
        errors.YearNotPledgedError,
        ("2022",),
    ),
    "allocation-for-unpledged-year": Case(
        FUNDED,
        c.AllocateFunds(initiative=VILLAGE, year=2022, amount="10.00"),
        errors.YearNotPledgedError,
        ("2022",),
    ),
    "pledge-unchanged": Case(
        FUNDED,
        PLEDGE_2021,
        errors.PledgeUnchangedError,
        ("2021", "120000.00", "same"),
    ),
    "pledge-without-homes": Case(
        (INIT,),
        PLEDGE_2021,
        errors.PledgeUnchangedError,
        ("2021", "0.00"),
    ),
    "pledge-below-received": Case(
        (
            *FUNDED,
            c.ReceiveDonation(year=2021, amount="100000.00", on=TODAY),
            c.DisposeUnits(country="SE", units=600, on=TODAY),
        ),
        PLEDGE_2021,
        errors.PledgeBelowCommitmentsError,
        ("2021", "60000.00", "100000.00", "received", "by 40000.00"),
    ),
    "pledge-below-allocated": Case(
        (*ALLOCATED, c.DisposeUnits(country="SE", units=900, on=TODAY)),
        PLEDGE_2021,
        errors.PledgeBelowCommitmentsError,
        ("2021", "30000.00", "50000.00", "allocated", "by 20000.00"),
    ),
    "receipt-beyond-pledge": Case(
        (*FUNDED, c.ReceiveDonation(year=2021, amount="100000.00", on=TODAY)),
        c.ReceiveDonation(year=2021, amount="20000.01", on=TODAY),
        errors.ReceiptExceedsPledgeError,
        ("20000.01", "2021", "20000.00", "by 0.01"),
    ),
    "initiative-registered-twice": Case(
        FUNDED,
        REGISTER.model_copy(update={"name": "Another"}),
        errors.InitiativeAlreadyRegisteredError,
        (VILLAGE,),
    ),
    "allocation-to-unknown-initiative": Case(
        FUNDED,
        c.AllocateFunds(initiative=SIBLINGS, year=2021, amount="10.00"),
        errors.InitiativeNotFoundError,
        (SIBLINGS,),
    ),
    "disbursement-to-unknown-initiative": Case(
        FUNDED,
        c.DisburseFunds(initiative=SIBLINGS, amount="10.00", on=TODAY),
        errors.InitiativeNotFoundError,
        (SIBLINGS,),
    ),
    "milestone-of-unknown-initiative": Case(
        FUNDED,
        c.RecordMilestone(initiative=SIBLINGS, name="opened", on=TODAY),
        errors.InitiativeNotFoundError,
        (SIBLINGS,),
    ),
    "closing-unknown-initiative": Case(
        FUNDED,
        c.CloseInitiative(id=SIBLINGS, on=TODAY),
        errors.InitiativeNotFoundError,
        (SIBLINGS,),
    ),
    "allocation-to-closed-initiative": Case(
        (*FUNDED, c.CloseInitiative(id=VILLAGE, on=date(2021, 8, 15))),
        c.AllocateFunds(initiative=VILLAGE, year=2021, amount="10.00"),
        errors.InitiativeClosedError,
        (VILLAGE, "2021-08-15"),
    ),
    "closing-twice": Case(
        (*FUNDED, c.CloseInitiative(id=VILLAGE, on=date(2021, 8, 15))),
        c.CloseInitiative(id=VILLAGE, on=TODAY),
        errors.InitiativeClosedError,
        (VILLAGE, "2021-08-15"),
    ),
    "allocation-id-twice": Case(
        ALLOCATED,
        c.AllocateFunds(initiative=VILLAGE, year=2021, amount="1.00", allocation_id="a-1"),
        errors.AllocationAlreadyExistsError,
        ("a-1",),
    ),
    "release-of-unknown-allocation": Case(
        ALLOCATED,
        c.ReleaseAllocation(id="a-9", amount="1.00", reason="typo"),
        errors.AllocationNotFoundError,
        ("a-9",),
    ),
    "allocation-beyond-unallocated": Case(
        FUNDED,
        c.AllocateFunds(initiative=VILLAGE, year=2021, amount="300000.00"),
        errors.AllocationExceedsUnallocatedError,
        (
            "allocation of 300000.00 exceeds the 2021 unallocated balance of 120000.00",
            "by 180000.00",
        ),
    ),
    "allocation-beyond-what-is-left": Case(
        ALLOCATED,
        c.AllocateFunds(initiative=VILLAGE, year=2021, amount="70000.01"),
        errors.AllocationExceedsUnallocatedError,
        ("70000.01", "70000.00", "by 0.01"),
    ),
    "release-beyond-allocation": Case(
        ALLOCATED,
        c.ReleaseAllocation(id="a-1", amount="50000.01", reason="scope cut"),
        errors.ReleaseExceedsAllocationError,
        ("50000.01", "50000.00", "a-1", "by 0.01"),
    ),
    "release-of-disbursed-money": Case(
        DISBURSED,
        c.ReleaseAllocation(id="a-1", amount="20000.01", reason="scope cut"),
        errors.ReleaseExceedsAllocationError,
        ("20000.01", "20000.00", VILLAGE, "by 0.01"),
    ),
    "disbursement-beyond-allocation": Case(
        DISBURSED,
        c.DisburseFunds(initiative=VILLAGE, amount="20000.01", on=TODAY),
        errors.DisbursementExceedsAvailableError,
        ("20000.01", "20000.00", VILLAGE, "by 0.01"),
    ),
    "disbursement-without-allocation": Case(
        FUNDED,
        c.DisburseFunds(initiative=VILLAGE, amount="0.01", on=TODAY),
        errors.DisbursementExceedsAvailableError,
        ("0.01", "0.00", VILLAGE),
    ),
    "milestone-twice": Case(
        (*FUNDED, c.RecordMilestone(initiative=VILLAGE, name="solar panels", on=TODAY)),
        c.RecordMilestone(initiative=VILLAGE, name="solar panels", on=date(2021, 10, 1)),
        errors.MilestoneAlreadyReachedError,
        ("solar panels", VILLAGE),
    ),
    "seal-without-news": Case(
        (INIT, c.SealLedger(position=7, digest="ab" * 32)),
        c.SealLedger(position=7, digest="cd" * 32),
        errors.SealError,
        ("7",),
    ),
}

# Errors the application raises, not the ledger's rules.
APPLICATION_ERRORS = {errors.CommandIdReusedError, errors.ConcurrencyError}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_refuses_with_named_error_and_figures(case: Case) -> None:
    ledger, _ = build(*case.setup)
    before = copy.deepcopy(ledger)
    with pytest.raises(case.error) as refused:
        ledger.decide(case.command)
    message = str(refused.value)
    assert refused.value.message == message
    missing = [figure for figure in case.figures if figure not in message]
    assert not missing, f"{message!r} does not name {missing}"
    assert ledger == before, "a refused command changed the ledger"


# Facts no command records, as a forger would append them: `admit` refuses each, so that
# verify and every consumer find them.
FORGED: dict[str, tuple[e.DomainEvent, type[DomainError]]] = {
    "pledge-not-computed": (
        e.DonationPledged(year=2021, basis="year-end", unit_basis=1200, rate="100.00",
                          amount="999000000.00", delta="998880000.00", currency="EUR"),
        errors.PledgeMismatchError,
    ),
    "release-of-another-initiative": (
        e.AllocationReleased(allocation_id="a-1", initiative=SIBLINGS, year=2021,
                             amount="1.00", currency="EUR", reason="forged"),
        errors.AllocationNotFoundError,
    ),
    "disbursement-beyond-allocation": (
        e.FundsDisbursed(initiative=VILLAGE, amount="999999999.00", currency="EUR",
                         disbursed_on=TODAY),
        errors.DisbursementExceedsAvailableError,
    ),
    "another-currency": (
        e.DonationReceived(year=2021, amount="1.00", currency="SEK", received_on=TODAY),
        errors.CurrencyMismatchError,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FORGED))
def test_admit_refuses_a_fact_no_command_could_record(name: str) -> None:
    ledger, _ = build(*ALLOCATED)
    fact, error = FORGED[name]
    before = copy.deepcopy(ledger)
    with pytest.raises(error):
        ledger.admit(fact)
    assert ledger == before


def test_every_ledger_error_has_a_case() -> None:
    ledger_errors = {
        cls for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, DomainError) and cls not in (DomainError, errors.EffectiveDateError)
    } - APPLICATION_ERRORS  # fmt: skip
    covered = {case.error for case in CASES.values()} | {err for _, err in FORGED.values()}
    covered |= REVERSAL_ERRORS  # reversals and effective dates: tests/unit/test_reversals.py
    assert ledger_errors <= covered
    assert len({cls.rule for cls in ledger_errors | APPLICATION_ERRORS}) == len(
        ledger_errors | APPLICATION_ERRORS
    ), "two errors share one rule name"


def test_spec_example_message() -> None:
    ledger, _ = build(*FUNDED)
    with pytest.raises(errors.AllocationExceedsUnallocatedError) as refused:
        ledger.decide(c.AllocateFunds(initiative=VILLAGE, year=2021, amount="300000.00"))
    assert str(refused.value).startswith(
        "allocation of 300000.00 exceeds the 2021 unallocated balance of 120000.00"
    )


# What the rules let through, up to the last cent.


def test_decide_does_not_change_the_ledger() -> None:
    ledger, _ = build(*FUNDED)
    before = copy.deepcopy(ledger)
    facts = ledger.decide(c.AllocateFunds(initiative=VILLAGE, year=2021, amount="5.00"))
    assert len(facts) == 1
    assert ledger == before


def test_allocation_of_exactly_the_unallocated_balance_then_nothing_more() -> None:
    ledger, _ = build(*ALLOCATED)
    (fact,) = record(ledger, c.AllocateFunds(initiative=VILLAGE, year=2021, amount="70000.00",
                                             allocation_id="a-2"))  # fmt: skip
    assert isinstance(fact, e.FundsAllocated)
    assert (fact.amount, fact.currency, fact.allocation_id) == (Decimal("70000.00"), "EUR", "a-2")
    assert ledger.year(2021).unallocated == 0
    with pytest.raises(errors.AllocationExceedsUnallocatedError, match=r"by 0\.01$"):
        ledger.decide(c.AllocateFunds(initiative=VILLAGE, year=2021, amount="0.01"))


def test_a_release_makes_money_allocatable_again() -> None:
    ledger, _ = build(*ALLOCATED, c.AllocateFunds(initiative=VILLAGE, year=2021,
                                                  amount="70000.00"))  # fmt: skip
    (released,) = record(ledger, c.ReleaseAllocation(id="a-1", amount="20000.00",
                                                     reason="phase two postponed"))  # fmt: skip
    assert isinstance(released, e.AllocationReleased)
    assert (released.initiative, released.year) == (VILLAGE, 2021)
    assert ledger.allocations["a-1"].remaining == Decimal("30000.00")
    assert ledger.year(2021).unallocated == Decimal("20000.00")
    assert ledger.initiatives[VILLAGE].available == Decimal("100000.00")
    record(ledger, c.AllocateFunds(initiative=VILLAGE, year=2021, amount="20000.00"))
    with pytest.raises(errors.AllocationExceedsUnallocatedError):
        ledger.decide(c.AllocateFunds(initiative=VILLAGE, year=2021, amount="0.01"))


def test_disbursement_of_exactly_what_is_available() -> None:
    ledger, _ = build(*DISBURSED)
    record(ledger, c.DisburseFunds(initiative=VILLAGE, amount="20000.00", on=TODAY))
    assert ledger.initiatives[VILLAGE].available == 0
    assert ledger.initiatives[VILLAGE].disbursed == Decimal("50000.00")


def test_receipt_of_exactly_the_outstanding_pledge() -> None:
    ledger, _ = build(*FUNDED)
    (fact,) = record(ledger, c.ReceiveDonation(year=2021, amount="120000.00", on=TODAY,
                                               currency="EUR"))  # fmt: skip
    assert isinstance(fact, e.DonationReceived)
    assert fact.received_on == TODAY
    with pytest.raises(errors.ReceiptExceedsPledgeError, match=r"outstanding pledge of 0\.00 "):
        ledger.decide(c.ReceiveDonation(year=2021, amount="0.01", on=TODAY))


def test_a_second_pledge_is_an_adjustment_with_its_delta() -> None:
    ledger, _ = build(*FUNDED)
    record(ledger, c.AcquireUnits(country="NL", units=300, on=date(2021, 10, 1)))
    (up,) = record(ledger, PLEDGE_2021)
    assert isinstance(up, e.DonationPledged)
    # 1,500 homes on 31 December x 100.00 = 150,000.00, 30,000.00 more than before.
    assert (up.amount, up.delta, up.unit_basis) == (Decimal("150000.00"), Decimal("30000.00"),
                                                    1500)  # fmt: skip
    assert (up.basis, up.rate, up.currency) == ("year-end", Decimal("100.00"), "EUR")
    record(ledger, c.DisposeUnits(country="SE", units=200, on=date(2021, 12, 31)))
    (down,) = record(ledger, PLEDGE_2021)
    assert isinstance(down, e.DonationPledged)
    assert (down.amount, down.delta) == (Decimal("130000.00"), Decimal("-20000.00"))
    assert ledger.year(2021).pledged == Decimal("130000.00")
    assert down.unit_basis == 1300


def test_first_pledge_delta_equals_its_amount() -> None:
    _, facts = build(*FUNDED)
    pledged = [fact for fact in facts if isinstance(fact, e.DonationPledged)]
    assert len(pledged) == 1
    assert pledged[0].amount == pledged[0].delta == Decimal("120000.00")


def test_a_pledge_may_fall_to_exactly_what_is_committed() -> None:
    ledger, _ = build(*ALLOCATED, c.ReceiveDonation(year=2021, amount="40000.00", on=TODAY),
                      c.DisposeUnits(country="SE", units=700, on=TODAY))  # fmt: skip
    # 500 homes x 100.00 = 50,000.00: exactly the 50,000.00 allocated.
    (fact,) = record(ledger, PLEDGE_2021)
    assert isinstance(fact, e.DonationPledged)
    assert (fact.amount, fact.delta) == (Decimal("50000.00"), Decimal("-70000.00"))


def test_pro_rata_pledge_on_the_ledger() -> None:
    ledger, _ = build(INIT.model_copy(update={"basis": "pro-rata"}), HOMES)
    (fact,) = record(ledger, PLEDGE_2021)
    assert isinstance(fact, e.DonationPledged)
    # 1,200 homes x 184 days (1 Jul - 31 Dec) = 220,800 unit-days;
    # 10,000 x 220,800 / 365 = 6,049,315.07 cents -> 60,493.15
    assert (fact.unit_basis, fact.amount) == (220_800, Decimal("60493.15"))


def test_closed_initiative_still_takes_disbursements_and_milestones() -> None:
    ledger, _ = build(*ALLOCATED, c.CloseInitiative(id=VILLAGE, on=TODAY, reason="handed over"))
    record(ledger, c.DisburseFunds(initiative=VILLAGE, amount="50000.00", on=TODAY))
    record(ledger, c.RecordMilestone(initiative=VILLAGE, name="handover", on=TODAY))
    assert ledger.initiatives[VILLAGE].milestones == {"handover"}


def test_allocation_ids_are_generated_and_unique() -> None:
    ledger, _ = build(*FUNDED)
    ids = set()
    for _ in range(3):
        (fact,) = record(ledger, c.AllocateFunds(initiative=VILLAGE, year=2021, amount="1.00"))
        assert isinstance(fact, e.FundsAllocated)
        ids.add(fact.allocation_id)
    assert len(ids) == 3
    assert set(ledger.allocations.changed) == ids  # a ledger replayed in memory keeps all


def test_replay_of_the_facts_gives_the_same_ledger() -> None:
    ledger, facts = build(*DISBURSED, c.ReleaseAllocation(id="a-1", amount="1.00", reason="r"),
                          c.CloseInitiative(id=VILLAGE, on=TODAY))  # fmt: skip
    assert replay(facts) == ledger


def test_event_scopes_and_business_dates() -> None:
    _, facts = build(*DISBURSED)
    scopes = [(fact.TYPE, fact.scope(), fact.business_date(TODAY)) for fact in facts]
    assert scopes == [
        ("PartnershipEstablished", "partnership", START),
        ("UnitsAcquired", "SE", START),
        ("DonationPledged", "2021", TODAY),
        ("InitiativeRegistered", VILLAGE, TODAY),
        ("FundsAllocated", VILLAGE, TODAY),
        ("FundsDisbursed", VILLAGE, TODAY),
    ]
