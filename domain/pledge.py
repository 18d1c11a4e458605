"""The pledge: what a year's gift is, computed from the terms and the portfolio history.

One computation, used by the ledger to record a pledge and by `verify` to recompute
every recorded one (anyone can redo it from the published facts):

    year-end   homes held on 31 December of the year, counted in full;
    pro-rata   each home counts for the days it was held in the year, from the
               partnership's start date on: rate x unit-days / days in the year.

A home is held from its acquisition date (inclusive) to its disposal date (exclusive).
The year's total is rounded half-even to the cent, once, in integer arithmetic.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from homeledger.domain.money import CENT
from homeledger.domain.portfolio import Portfolio


@dataclass(frozen=True)
class Terms:
    """The partnership's terms, as established."""

    donor: str
    beneficiary: str
    rate: Decimal
    currency: str
    basis: str
    start_date: date


@dataclass(frozen=True)
class PledgeBasis:
    """What a year's pledge is computed from: the unit basis and the resulting amount."""

    unit_basis: int
    amount_cents: int


def days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def compute_pledge(
    portfolio: Portfolio, basis: str, rate_cents: int, year: int, start: date
) -> PledgeBasis:
    """The year's whole pledge, rounded half-even to the cent once, on the total.

    year-end: homes held on 31 December, counted in full.
    pro-rata: rate x unit-days / days in year, counting days from the start date on.
    Integer arithmetic throughout, so the rounding is exact.
    """
    year_end = date(year, 12, 31)
    if basis == "year-end":
        units = portfolio.held_total(year_end)
        return PledgeBasis(unit_basis=units, amount_cents=units * rate_cents)
    first = max(date(year, 1, 1), start)
    unit_days = portfolio.unit_days(first, year_end)
    numerator = rate_cents * unit_days
    denominator = days_in_year(year)
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return PledgeBasis(unit_basis=unit_days, amount_cents=quotient)


@dataclass(frozen=True)
class Pledge:
    """A year's whole pledge as the portfolio history gives it, and the change from the
    amount pledged before (what a DonationPledged fact records)."""

    year: int
    unit_basis: int
    amount: Decimal
    delta: Decimal


def pledge_for(terms: Terms, portfolio: Portfolio, year: int, pledged_before: Decimal) -> Pledge:
    basis = compute_pledge(portfolio, terms.basis, int(terms.rate / CENT), year, terms.start_date)
    amount = Decimal(basis.amount_cents) * CENT
    return Pledge(year, basis.unit_basis, amount, amount - pledged_before)
