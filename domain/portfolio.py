"""Homes held per country over time.

A home is held from its acquisition date (inclusive) to its disposal date (exclusive).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date


@dataclass
class Portfolio:
    """Per country, the net change in homes held on each date that saw one."""

    changes: dict[str, list[tuple[date, int]]] = field(default_factory=dict)

    def copy(self) -> Portfolio:
        return Portfolio({country: list(entries) for country, entries in self.changes.items()})

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
