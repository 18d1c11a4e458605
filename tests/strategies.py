"""Shared Hypothesis strategies: values, commands (valid and invalid-but-well-typed), facts.

The value sets are small on purpose (five countries, five initiatives, four years) so
that random commands collide: they dispose of homes that are held, allocate to
initiatives that exist, release allocations that were made, and just as often do not.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from homeledger.adapters.envelope import new_body
from homeledger.domain import commands as c
from homeledger.domain import events as e
from homeledger.domain import reference_case
from homeledger.domain.values import clean_text

COUNTRIES = ("SE", "DE", "NL", "DK", "GW")
SLUGS = (
    "gw-bissau-village",
    "nl-siblings-together",
    "se-youth-jobs",
    "dk-family-care",
    "de-foster-homes",
)
ALLOCATION_IDS = ("a-1", "a-2", "a-3", "a-4", "a-5", "a-6")
MILESTONES = ("solar panels installed", "crisis shelter opened", "computer room equipped")
CURRENCY = "EUR"
OTHER_CURRENCIES = ("SEK", "DKK", "USD")
FIRST_DAY = date(2021, 1, 1)
LAST_DAY = date(2024, 12, 31)
FIRST_YEAR, LAST_YEAR = FIRST_DAY.year, LAST_DAY.year
MAX_CENTS = 99_999_999_999_999_99  # domain.money.MAX_AMOUNT in cents


def cents_to_str(cents: int) -> str:
    """The wire form of an amount of cents: '250000.00'. Negative amounts keep their sign."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def to_decimal(cents: int) -> Decimal:
    return Decimal(cents_to_str(cents))


# Values.

countries = st.sampled_from(COUNTRIES)
slugs = st.sampled_from(SLUGS)
any_slugs = st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,40}", fullmatch=True)
allocation_ids = st.sampled_from(ALLOCATION_IDS)
dates = st.dates(FIRST_DAY, LAST_DAY)
start_dates = st.dates(FIRST_DAY, date(2022, 12, 31))
years = st.integers(FIRST_YEAR, LAST_YEAR)
bases = st.sampled_from(["pro-rata", "year-end"])
unit_counts = st.integers(1, 50)
digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


def _accepted(text: str) -> bool:
    try:
        clean_text(text)
    except ValueError:
        return False
    return True


# Free text as an operator may type it (any visible character), as the ledger records
# it: normalised (values.clean_text), never blank.
texts = st.text(
    alphabet=st.characters(codec="utf-8",
                           exclude_categories=("Cc", "Cs", "Cf", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=30,
).filter(_accepted).map(clean_text).filter(lambda text: text != "")  # fmt: skip
plain_texts = st.text(alphabet=string.ascii_letters + string.digits + " -'", min_size=1,
                      max_size=30).filter(lambda text: text.strip() != "")  # fmt: skip
optional_texts = st.just("") | texts
# Money commands may name the currency: none, the partnership's, or another one.
command_currencies = st.sampled_from([None, None, CURRENCY, *OTHER_CURRENCIES])
recorded_times = st.datetimes(
    min_value=datetime(2021, 1, 1),
    max_value=datetime(2030, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]),
)


def cents(min_cents: int = 1, max_cents: int = 500_000) -> st.SearchStrategy[int]:
    return st.integers(min_cents, max_cents)


def amounts(min_cents: int = 1, max_cents: int = 500_000) -> st.SearchStrategy[str]:
    """Money as two-decimal strings, from min_cents to max_cents."""
    return cents(min_cents, max_cents).map(cents_to_str)


any_amounts = amounts()
# An effective date (`--on`) left to its default, or given.
no_dates = st.none()
maybe_dates = st.none() | dates
maybe_allocation_ids = st.none() | allocation_ids
milestone_names = st.sampled_from(MILESTONES)


# Commands. Each strategy takes its field strategies as keywords, so a test can narrow
# one field (a known initiative, an amount just over the balance) and keep the rest.


def establish_partnership(
    *, rate: Any = None, basis: Any = bases, start: Any = start_dates, currency: Any = None
) -> st.SearchStrategy[c.EstablishPartnership]:
    return st.builds(
        c.EstablishPartnership,
        donor=st.sampled_from(["Heimstaden", "Landlord AB"]),
        beneficiary=st.sampled_from(["SOS Children's Villages", "SOS Barnbyar"]),
        rate=rate if rate is not None else amounts(1, 20_000),
        currency=currency if currency is not None else st.just(CURRENCY),
        basis=basis,
        start=start,
    )


def acquire_units(
    *, country: Any = countries, units: Any = unit_counts, on: Any = dates
) -> st.SearchStrategy[c.AcquireUnits]:
    return st.builds(c.AcquireUnits, country=country, units=units, on=on, ref=optional_texts)


def dispose_units(
    *, country: Any = countries, units: Any = unit_counts, on: Any = dates
) -> st.SearchStrategy[c.DisposeUnits]:
    return st.builds(c.DisposeUnits, country=country, units=units, on=on, ref=optional_texts)


def pledge_donation(
    *, year: Any = years, on: Any = no_dates
) -> st.SearchStrategy[c.PledgeDonation]:
    return st.builds(c.PledgeDonation, year=year, on=on)


def receive_donation(
    *, year: Any = years, amount: Any = any_amounts, on: Any = dates,
    currency: Any = command_currencies,
) -> st.SearchStrategy[c.ReceiveDonation]:  # fmt: skip
    return st.builds(c.ReceiveDonation, year=year, amount=amount, on=on, currency=currency)


def register_initiative(
    *, initiative: Any = slugs, on: Any = no_dates
) -> st.SearchStrategy[c.RegisterInitiative]:
    return st.builds(
        c.RegisterInitiative, id=initiative, name=texts, country=countries,
        programme=st.sampled_from(["family strengthening", "alternative care", "youth"]),
        on=on,
    )  # fmt: skip


def close_initiative(
    *, initiative: Any = slugs, on: Any = dates
) -> st.SearchStrategy[c.CloseInitiative]:
    return st.builds(c.CloseInitiative, id=initiative, on=on, reason=optional_texts)


def allocate_funds(
    *, initiative: Any = slugs, year: Any = years, amount: Any = any_amounts,
    allocation_id: Any = maybe_allocation_ids, currency: Any = command_currencies,
    on: Any = no_dates,
) -> st.SearchStrategy[c.AllocateFunds]:  # fmt: skip
    return st.builds(
        c.AllocateFunds, initiative=initiative, year=year, amount=amount,
        allocation_id=allocation_id, currency=currency, on=on,
    )  # fmt: skip


def release_allocation(
    *, allocation_id: Any = allocation_ids, amount: Any = any_amounts,
    currency: Any = command_currencies, on: Any = no_dates,
) -> st.SearchStrategy[c.ReleaseAllocation]:  # fmt: skip
    return st.builds(
        c.ReleaseAllocation, id=allocation_id, amount=amount, reason=texts,
        currency=currency, on=on,
    )  # fmt: skip


def disburse_funds(
    *, initiative: Any = slugs, amount: Any = any_amounts, on: Any = dates,
    currency: Any = command_currencies,
) -> st.SearchStrategy[c.DisburseFunds]:  # fmt: skip
    return st.builds(
        c.DisburseFunds, initiative=initiative, amount=amount, on=on,
        currency=currency,
    )  # fmt: skip


def record_milestone(
    *, initiative: Any = slugs, name: Any = milestone_names, on: Any = dates
) -> st.SearchStrategy[c.RecordMilestone]:
    return st.builds(
        c.RecordMilestone, initiative=initiative, name=name, on=on, evidence=optional_texts
    )


# A fact to reverse: a position (as typed) or an event id.
fact_refs = st.one_of(st.integers(1, 60).map(str), st.uuids().map(str))


def reverse_fact(
    *, ref: Any = fact_refs, on: Any = maybe_dates
) -> st.SearchStrategy[c.ReverseFact]:
    return st.builds(c.ReverseFact, id=ref, reason=texts, on=on)


def seal_ledger() -> st.SearchStrategy[c.SealLedger]:
    return st.builds(c.SealLedger, position=st.integers(0, 10_000), digest=digests)


COMMAND_STRATEGIES: dict[type[c.Command], Callable[[], st.SearchStrategy[Any]]] = {
    c.EstablishPartnership: establish_partnership,
    c.AcquireUnits: acquire_units,
    c.DisposeUnits: dispose_units,
    c.PledgeDonation: pledge_donation,
    c.ReceiveDonation: receive_donation,
    c.RegisterInitiative: register_initiative,
    c.CloseInitiative: close_initiative,
    c.AllocateFunds: allocate_funds,
    c.ReleaseAllocation: release_allocation,
    c.DisburseFunds: disburse_funds,
    c.RecordMilestone: record_milestone,
    c.ReverseFact: reverse_fact,
    c.SealLedger: seal_ledger,
}


def ledger_commands() -> st.SearchStrategy[c.Command]:
    """Any command an operator can send after `init`, valid or not."""
    return st.one_of(
        [
            make()
            for cls, make in COMMAND_STRATEGIES.items()
            if cls not in (c.EstablishPartnership, c.SealLedger)
        ]
    )


@st.composite
def ledger_histories(draw: st.DrawFn, max_size: int = 40) -> list[c.Command]:
    """`init`, homes from its start on, initiatives, pledges, then mostly valid commands.

    The later commands name registered initiatives, pledged years and small amounts, so
    most are accepted; the caller skips the ones the ledger refuses.
    """
    start = draw(start_dates)
    after_start = st.dates(start, LAST_DAY)
    rate = draw(amounts(1_000, 20_000))
    history: list[c.Command] = [
        draw(establish_partnership(rate=st.just(rate), start=st.just(start)))
    ]
    history += draw(st.lists(acquire_units(units=st.integers(10, 400), on=after_start),
                             min_size=1, max_size=5))  # fmt: skip
    registered = draw(st.lists(slugs, min_size=1, max_size=3, unique=True))
    history += [draw(register_initiative(initiative=st.just(slug))) for slug in registered]
    pledged = draw(st.lists(st.integers(start.year, LAST_YEAR), min_size=1, max_size=3))
    history += [c.PledgeDonation(year=year) for year in pledged]
    known, small = st.sampled_from(registered), amounts(1, 5_000)
    likely = st.one_of(
        acquire_units(on=after_start),
        dispose_units(on=after_start),
        pledge_donation(year=st.sampled_from(pledged)),
        receive_donation(year=st.sampled_from(pledged), amount=small, on=after_start,
                         currency=st.none()),
        allocate_funds(initiative=known, year=st.sampled_from(pledged), amount=small,
                       currency=st.none()),
        release_allocation(amount=amounts(1, 1_000), currency=st.none()),
        disburse_funds(initiative=known, amount=amounts(1, 1_000), on=after_start,
                       currency=st.none()),
        record_milestone(initiative=known),
        close_initiative(initiative=known, on=after_start),
    )  # fmt: skip
    history += draw(st.lists(likely | ledger_commands(), min_size=min(5, max_size),
                             max_size=max_size))  # fmt: skip
    return history


# Facts, as a store or a stream might hand them over.

signed_cents = st.integers(-MAX_CENTS, MAX_CENTS)
wire_money = cents(0, MAX_CENTS).map(to_decimal)

EVENT_STRATEGIES: dict[str, st.SearchStrategy[e.DomainEvent]] = {
    "PartnershipEstablished": st.builds(
        e.PartnershipEstablished,
        donor=texts,
        beneficiary=texts,
        rate=wire_money,
        currency=st.sampled_from([CURRENCY, *OTHER_CURRENCIES]),
        basis=bases,
        start_date=dates,
    ),
    "UnitsAcquired": st.builds(
        e.UnitsAcquired,
        country=countries,
        units=st.integers(1, 10**8),
        effective_date=dates,
        reference=optional_texts,
    ),
    "UnitsDisposed": st.builds(
        e.UnitsDisposed,
        country=countries,
        units=st.integers(1, 10**8),
        effective_date=dates,
        reference=optional_texts,
    ),
    "DonationPledged": st.builds(
        e.DonationPledged,
        year=years,
        basis=bases,
        unit_basis=st.integers(0, 10**12),
        rate=wire_money,
        amount=wire_money,
        delta=signed_cents.map(to_decimal),
        currency=st.just(CURRENCY),
    ),
    "DonationReceived": st.builds(
        e.DonationReceived,
        year=years,
        amount=wire_money,
        currency=st.just(CURRENCY),
        received_on=dates,
    ),
    "InitiativeRegistered": st.builds(
        e.InitiativeRegistered,
        initiative=any_slugs,
        name=texts,
        country=countries,
        programme=texts,
    ),
    "FundsAllocated": st.builds(
        e.FundsAllocated,
        allocation_id=tokens,
        initiative=any_slugs,
        year=years,
        amount=wire_money,
        currency=st.just(CURRENCY),
    ),
    "AllocationReleased": st.builds(
        e.AllocationReleased,
        allocation_id=tokens,
        initiative=any_slugs,
        year=years,
        amount=wire_money,
        currency=st.just(CURRENCY),
        reason=texts,
    ),
    "FundsDisbursed": st.builds(
        e.FundsDisbursed,
        initiative=any_slugs,
        amount=wire_money,
        currency=st.just(CURRENCY),
        disbursed_on=dates,
    ),
    "MilestoneReached": st.builds(
        e.MilestoneReached,
        initiative=any_slugs,
        milestone=texts,
        reached_on=dates,
        evidence=optional_texts,
    ),
    "InitiativeClosed": st.builds(
        e.InitiativeClosed, initiative=any_slugs, closed_on=dates, reason=optional_texts
    ),
    "LedgerSealed": st.builds(e.LedgerSealed, position=st.integers(0, 10**9), digest=digests),
}


def _reversal_of(fact: e.DomainEvent, event_id: str, position: int,
                 reason: str) -> e.FactReversed:  # fmt: skip
    return e.FactReversed(reverses=event_id, reversed_type=fact.TYPE, reversed_position=position,
                          reason=reason, original=e.event_data(fact))  # fmt: skip


EVENT_STRATEGIES["FactReversed"] = st.builds(
    _reversal_of,
    st.one_of([EVENT_STRATEGIES[kind] for kind in sorted(e.REVERSIBLE)]),
    st.uuids().map(str),
    st.integers(1, 10**9),
    texts,
)


def events() -> st.SearchStrategy[e.DomainEvent]:
    return st.one_of(list(EVENT_STRATEGIES.values()))


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The stored body of a random fact, as the application would build it."""
    return new_body(
        draw(events()),
        event_id=draw(st.uuids()),
        version=draw(st.integers(1, 10**9)),
        recorded_at=draw(recorded_times),
        actor=draw(texts),
        command_id=draw(tokens),
        correlation_id=draw(tokens),
        prev_hash=draw(digests),
    )


# Histories that move money.

KINDS = ("allocate", "allocate", "allocate", "release", "release", "disburse", "disburse",
         "receive", "receive", "acquire", "dispose", "pledge", "milestone", "close")  # fmt: skip


@st.composite
def money_histories(draw: st.DrawFn, max_size: int = 30) -> list[c.Command]:
    """Histories that move money: most allocations, releases, receipts, disbursements and
    pledge adjustments (up and down) are valid; the ones the ledger refuses are skipped."""
    start = draw(st.dates(date(2021, 1, 1), date(2021, 12, 31)))
    chosen = draw(st.lists(st.sampled_from(SLUGS), min_size=1, max_size=4, unique=True))
    history: list[c.Command] = [
        reference_case.partnership(start=start, rate=draw(amounts(100, 20_000)),
                                   basis=draw(bases)),
    ]  # fmt: skip
    for _ in range(draw(st.integers(1, 3))):
        units = draw(st.integers(20, 400))
        history.append(c.AcquireUnits(country=draw(countries), units=units, on=start))
    for slug in chosen:
        history.append(c.RegisterInitiative(id=slug, name=slug.upper(), programme="family",
                                            country=draw(countries)))  # fmt: skip
    history += [c.PledgeDonation(year=year) for year in range(start.year, 2024)]
    allocated: list[str] = []
    for index in range(draw(st.integers(max_size // 2, max_size))):
        fields = _Fields(draw, start, chosen)
        kind = draw(st.sampled_from(KINDS))
        if kind == "allocate":
            allocated.append(f"a-{index}")
            history.append(fields.allocate(allocated[-1]))
        elif kind == "release" and allocated:
            history.append(fields.release(draw(st.sampled_from(allocated))))
        elif kind != "release":
            history.append(getattr(fields, kind)())
    return history


class _Fields:
    """One random command of each kind, within the history's dates and initiatives."""

    def __init__(self, draw: st.DrawFn, start: date, chosen: list[str]) -> None:
        self.draw = draw
        self.on = draw(st.dates(start, date(2023, 12, 31)))
        self.year = draw(st.integers(start.year, 2023))
        self.initiative = draw(st.sampled_from(chosen))

    def allocate(self, allocation_id: str) -> c.Command:
        return c.AllocateFunds(initiative=self.initiative, year=self.year,
                               amount=self.draw(amounts(100, 200_000)),
                               allocation_id=allocation_id)  # fmt: skip

    def release(self, allocation_id: str) -> c.Command:
        return c.ReleaseAllocation(id=allocation_id, amount=self.draw(amounts(100, 60_000)),
                                   reason="re-planned")  # fmt: skip

    def disburse(self) -> c.Command:
        return c.DisburseFunds(initiative=self.initiative, on=self.on,
                               amount=self.draw(amounts(100, 60_000)))  # fmt: skip

    def receive(self) -> c.Command:
        return c.ReceiveDonation(year=self.year, on=self.on,
                                 amount=self.draw(amounts(100, 500_000)))  # fmt: skip

    def acquire(self) -> c.Command:
        return c.AcquireUnits(country=self.draw(countries), on=self.on,
                              units=self.draw(st.integers(1, 300)))  # fmt: skip

    def dispose(self) -> c.Command:
        return c.DisposeUnits(country=self.draw(countries), on=self.on,
                              units=self.draw(st.integers(1, 300)))  # fmt: skip

    def pledge(self) -> c.Command:
        return c.PledgeDonation(year=self.year)

    def milestone(self) -> c.Command:
        return c.RecordMilestone(initiative=self.initiative, on=self.on,
                                 name=self.draw(milestone_names))  # fmt: skip

    def close(self) -> c.Command:
        return c.CloseInitiative(id=self.initiative, on=self.on)
