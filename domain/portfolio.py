"""Homes held per country over time, and the pledge bases computed from them.

A home is held from its acquisition date (inclusive) to its disposal date (exclusive).
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date


@dataclass
class Portfolio:
    """Per country, the net change in homes held on each date that saw one."""

    changes: dict[str, list[tuple[date, int]]] = field(default_factory=dict)

    def apply(self, country: str, on: date, delta: int) -> None:
        entries = self.changes.setdefault(country, [])
        index = bisect.bisect_left(entries, (on,))
        if index < len(entries) and entries[index][0] == on:
            entries[index] = (on, entries[index][1] + delta)
        else:
            entries.insert(index, (on, delta))

    def held(self, country: str, on: date) -> int:
        entries = self.changes.get(country, [])
        end = bisect.bisect_right(entries, (on, float("inf")))
        return sum(delta for _, delta in entries[:end])

    def held_by_country(self, on: date) -> dict[str, int]:
        held = {country: self.held(country, on) for country in sorted(self.changes)}
        return {country: units for country, units in held.items() if units}

    def held_total(self, on: date) -> int:
        return sum(self.held(country, on) for country in self.changes)

    def lowest_from(self, country: str, on: date) -> int:
        """The fewest homes held in the country on `on` or any later date."""
        entries = self.changes.get(country, [])
        running = self.held(country, on)
        lowest = running
        start = bisect.bisect_right(entries, (on, float("inf")))
        for _, delta in entries[start:]:
            running += delta
            lowest = min(lowest, running)
        return lowest

    def unit_days(self, first: date, last: date) -> int:
        """Sum over each day from `first` to `last` (inclusive) of the homes held."""
        if last < first:
            return 0
        total = 0
        day = first
        running = self.held_total(first)
        for change_day, delta in self._changes_between(first, last):
            total += running * (change_day - day).days
            running += delta
            day = change_day
        return total + running * ((last - day).days + 1)

    def _changes_between(self, first: date, last: date) -> Iterator[tuple[date, int]]:
        """Net changes on days after `first` up to `last`, in date order."""
        merged: dict[date, int] = {}
        for entries in self.changes.values():
            start = bisect.bisect_right(entries, (first, float("inf")))
            for on, delta in entries[start:]:
                if on > last:
                    break
                merged[on] = merged.get(on, 0) + delta
        return iter(sorted(merged.items()))


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

