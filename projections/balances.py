"""Donation balances per year, per initiative and per country.

Per year: pledged (the year's whole pledge after its latest adjustment), received,
outstanding (pledged - received), allocated (every allocation of the year's money,
gross), released (allocations given back), unallocated (pledged - allocated +
released). Per initiative and per country (the initiative's country): allocated,
released, disbursed and available (allocated - released - disbursed, what may still
be paid out). Disbursements are not tied to a year, so year rows have no `disbursed`,
and rows filtered to one year have no `disbursed` or `available`.

Every fact that moves these figures also leaves one row in a log of movements (its
position, the date from which it counts, the keys and the signed amounts), so that
"facts effective on or before D, as of position N" is one sum over that log (`cut`):
exactly what the model built from those facts alone holds, without replaying them.
A reversal counts from its reversed fact's date (see `domain.events.effect_date`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Self

from homeledger.adapters.envelope import Envelope
from homeledger.domain import events as e
from homeledger.domain.money import ZERO, fmt
from homeledger.projections.model import Model, Row, Rows, Table, from_cents, normalise, to_cents

YEARS = Table(
    "hl_proj_balance_years",
    (("year", "INT"), ("basis", "TEXT"), ("unit_basis", "INT"), ("pledged", "INT"),
     ("received", "INT"), ("allocated", "INT"), ("released", "INT")),
    ("year",),
)  # fmt: skip
INITIATIVES = Table(
    "hl_proj_balance_initiatives",
    (("initiative", "TEXT"), ("name", "TEXT"), ("country", "TEXT"), ("programme", "TEXT"),
     ("closed_on", "TEXT"), ("disbursed", "INT")),
    ("initiative",),
)  # fmt: skip
GRANTS = Table(
    "hl_proj_balance_grants",
    (("initiative", "TEXT"), ("year", "INT"), ("allocated", "INT"), ("released", "INT")),
    ("initiative", "year"),
)
MOVES = Table(
    "hl_proj_balance_moves",
    (("position", "INT"), ("effect_date", "TEXT"), ("kind", "TEXT"), ("year", "INT"),
     ("initiative", "TEXT"), ("unit_basis", "INT"), ("pledged", "INT"), ("received", "INT"),
     ("allocated", "INT"), ("released", "INT"), ("disbursed", "INT")),
    ("position",),
    log=True,
)  # fmt: skip
_SUMS = ("pledged", "received", "allocated", "released", "disbursed")
# The sums of the movements as of position N (first ?) effective on or before D.
CUT_SUMS = (
    f"SELECT year, initiative, {', '.join(f'SUM({n})' for n in _SUMS)}, "
    "MAX(CASE WHEN kind = 'InitiativeRegistered' THEN 1 ELSE 0 END) "
    f"FROM {MOVES.name} WHERE position <= ? AND effect_date <= ? "
    "GROUP BY year, initiative ORDER BY year, initiative"
)
CUT_PLEDGES = (
    f"SELECT year, unit_basis FROM {MOVES.name} WHERE kind = 'DonationPledged' "
    "AND position <= ? AND effect_date <= ? ORDER BY position"
)

BY_CHOICES = ("year", "initiative", "country")
YEAR_COLUMNS = ("year", "pledged", "received", "outstanding", "allocated", "released",
                "unallocated")  # fmt: skip
INITIATIVE_COLUMNS = ("initiative", "country", "allocated", "released", "disbursed", "available")
COUNTRY_COLUMNS = ("country", "allocated", "released", "disbursed", "available")


@dataclass
class YearTotals:
    basis: str = ""
    unit_basis: int = 0
    pledged: Decimal = ZERO
    received: Decimal = ZERO
    allocated: Decimal = ZERO
    released: Decimal = ZERO


@dataclass
class InitiativeTotals:
    name: str
    country: str
    programme: str
    closed_on: str | None = None
    disbursed: Decimal = ZERO


@dataclass
class Grant:
    """One initiative's money from one year."""

    allocated: Decimal = ZERO
    released: Decimal = ZERO


@dataclass
class _Sums:
    allocated: Decimal = ZERO
    released: Decimal = ZERO
    disbursed: Decimal = ZERO


class BalancesModel(Model):
    NAME = "balances"
    TABLES = (YEARS, INITIATIVES, GRANTS, MOVES)
    SNAPSHOTTED = True
    STATE_QUERIES: ClassVar[dict[str, str]] = {
        YEARS.name: f"SELECT * FROM {YEARS.name} ORDER BY year",
        INITIATIVES.name: f"SELECT * FROM {INITIATIVES.name} ORDER BY initiative",
        GRANTS.name: f"SELECT * FROM {GRANTS.name} ORDER BY initiative, year",
    }

    def __init__(self) -> None:
        super().__init__()
        self.years: dict[int, YearTotals] = {}
        self.initiatives: dict[str, InitiativeTotals] = {}
        self.grants: dict[tuple[str, int], Grant] = {}

    def _handlers(self) -> dict[str, Callable[[Envelope, Any], None]]:
        return {
            e.DonationPledged.TYPE: self._pledged,
            e.DonationReceived.TYPE: self._received,
            e.InitiativeRegistered.TYPE: self._registered,
            e.InitiativeClosed.TYPE: self._closed,
            e.FundsAllocated.TYPE: self._allocated,
            e.AllocationReleased.TYPE: self._released,
            e.FundsDisbursed.TYPE: self._disbursed,
            e.FactReversed.TYPE: self._reversed,
        }

    def _year(self, year: int) -> YearTotals:
        self._touch(YEARS.name, year)
        totals = self.years.get(year)  # setdefault would build a YearTotals every call
        if totals is None:
            totals = self.years[year] = YearTotals()
        return totals

    def _initiative(self, initiative: str) -> InitiativeTotals:
        self._touch(INITIATIVES.name, initiative)
        # A fact about an initiative never registered cannot be recorded; a store
        # edited by hand might hold one, and the balances still add up.
        totals = self.initiatives.get(initiative)
        if totals is None:
            totals = self.initiatives[initiative] = InitiativeTotals(
                name=initiative, country="", programme=""
            )
        return totals

    def _grant(self, initiative: str, year: int) -> Grant:
        key = (initiative, year)
        self._touch(GRANTS.name, key)
        grant = self.grants.get(key)
        if grant is None:
            grant = self.grants[key] = Grant()
        return grant

    def _move(self, env: Envelope, ev: e.DomainEvent, year: int | None = None,
              initiative: str | None = None, unit_basis: int | None = None,
              **amounts: Decimal) -> None:  # fmt: skip
        cents = [to_cents(amounts[name]) if name in amounts else 0 for name in _SUMS]
        self._append(MOVES.name, (env.position, e.effect_date(ev, env.effective_date).isoformat(),
                                  ev.TYPE, year, initiative, unit_basis, *cents))  # fmt: skip

    def _pledged(self, env: Envelope, ev: e.DonationPledged) -> None:
        book = self._year(ev.year)
        # The sum of the deltas: the whole pledge after the latest adjustment, and in a cut
        # by effective date what the adjustments effective by then add up to.
        book.basis, book.unit_basis, book.pledged = ev.basis, ev.unit_basis, book.pledged + ev.delta
        self._move(env, ev, ev.year, unit_basis=ev.unit_basis, pledged=ev.delta)

    def _received(self, env: Envelope, ev: e.DonationReceived) -> None:
        self._year(ev.year).received += ev.amount
        self._move(env, ev, ev.year, received=ev.amount)

    def _registered(self, env: Envelope, ev: e.InitiativeRegistered) -> None:
        self._touch(INITIATIVES.name, ev.initiative)
        self.initiatives[ev.initiative] = InitiativeTotals(ev.name, ev.country, ev.programme)
        self._move(env, ev, initiative=ev.initiative)

    def _closed(self, env: Envelope, ev: e.InitiativeClosed) -> None:
        self._initiative(ev.initiative).closed_on = ev.closed_on.isoformat()
        self._move(env, ev, initiative=ev.initiative)

    def _allocated(self, env: Envelope, ev: e.FundsAllocated) -> None:
        self._year(ev.year).allocated += ev.amount
        self._grant(ev.initiative, ev.year).allocated += ev.amount
        self._move(env, ev, ev.year, ev.initiative, allocated=ev.amount)

    def _released(self, env: Envelope, ev: e.AllocationReleased) -> None:
        self._year(ev.year).released += ev.amount
        self._grant(ev.initiative, ev.year).released += ev.amount
        self._move(env, ev, ev.year, ev.initiative, released=ev.amount)

    def _disbursed(self, env: Envelope, ev: e.FundsDisbursed) -> None:
        self._initiative(ev.initiative).disbursed += ev.amount
        self._move(env, ev, initiative=ev.initiative, disbursed=ev.amount)

    def _reversed(self, env: Envelope, ev: e.FactReversed) -> None:
        taken = ev.reversed_fact
        if isinstance(taken, e.DonationReceived):
            self._year(taken.year).received -= taken.amount
            self._move(env, ev, taken.year, received=-taken.amount)
        elif isinstance(taken, e.FundsDisbursed):
            self._initiative(taken.initiative).disbursed -= taken.amount
            self._move(env, ev, initiative=taken.initiative, disbursed=-taken.amount)

    # Rows.

    def _keyed_row(self, table: str, key: Any) -> Row:
        if table == YEARS.name:
            y = self.years[key]
            return (key, y.basis, y.unit_basis, to_cents(y.pledged), to_cents(y.received),
                    to_cents(y.allocated), to_cents(y.released))  # fmt: skip
        if table == INITIATIVES.name:
            i = self.initiatives[key]
            return (key, i.name, i.country, i.programme, i.closed_on, to_cents(i.disbursed))
        g = self.grants[key]
        return (*key, to_cents(g.allocated), to_cents(g.released))

    def state_rows(self) -> Rows:
        return {
            YEARS.name: [self._keyed_row(YEARS.name, k) for k in sorted(self.years)],
            INITIATIVES.name: [
                self._keyed_row(INITIATIVES.name, k) for k in sorted(self.initiatives)
            ],
            GRANTS.name: [self._keyed_row(GRANTS.name, k) for k in sorted(self.grants)],
        }

    @classmethod
    def from_state(cls, rows: Rows, position: int) -> Self:
        model = cls()
        model.position = position
        for year, basis, unit_basis, pledged, received, allocated, released in normalise(
            rows.get(YEARS.name, [])
        ):
            model.years[year] = YearTotals(
                basis, unit_basis, from_cents(pledged), from_cents(received),
                from_cents(allocated), from_cents(released),
            )  # fmt: skip
        for key, name, country, programme, closed_on, disbursed in normalise(
            rows.get(INITIATIVES.name, [])
        ):
            model.initiatives[key] = InitiativeTotals(
                name, country, programme, closed_on, from_cents(disbursed)
            )
        for initiative, year, allocated, released in normalise(rows.get(GRANTS.name, [])):
            model.grants[(initiative, year)] = Grant(from_cents(allocated), from_cents(released))
        return model

    # What readers see: rows with money as two-decimal strings.

    def rows(self, by: str = "year", year: int | None = None) -> list[dict[str, Any]]:
        if by == "year":
            return self.year_rows(year)
        sums = self._initiative_sums(year)
        if by == "initiative":
            return [self._money_row({"initiative": key, "country": self._country(key)}, s, year)
                    for key, s in sorted(sums.items())]  # fmt: skip
        if by == "country":
            return [self._money_row({"country": country}, s, year)
                    for country, s in sorted(self._by_country(sums).items())]  # fmt: skip
        raise ValueError(f"balances by {by!r}: choose one of {', '.join(BY_CHOICES)}")

    def year_rows(self, year: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "year": key,
                "pledged": fmt(t.pledged),
                "received": fmt(t.received),
                "outstanding": fmt(t.pledged - t.received),
                "allocated": fmt(t.allocated),
                "released": fmt(t.released),
                "unallocated": fmt(t.pledged - t.allocated + t.released),
            }
            for key, t in sorted(self.years.items())
            if year is None or key == year
        ]

    def _country(self, initiative: str) -> str:
        info = self.initiatives.get(initiative)
        return info.country if info else ""

    def _initiative_sums(self, year: int | None) -> dict[str, _Sums]:
        sums: dict[str, _Sums] = {}
        if year is None:
            for key, info in self.initiatives.items():
                sums[key] = _Sums(disbursed=info.disbursed)
        for (initiative, grant_year), grant in self.grants.items():
            if year is not None and grant_year != year:
                continue
            total = sums.setdefault(initiative, _Sums())
            total.allocated += grant.allocated
            total.released += grant.released
        return sums

    def _by_country(self, sums: dict[str, _Sums]) -> dict[str, _Sums]:
        countries: dict[str, _Sums] = {}
        for initiative, s in sums.items():
            total = countries.setdefault(self._country(initiative), _Sums())
            total.allocated += s.allocated
            total.released += s.released
            total.disbursed += s.disbursed
        return countries

    @staticmethod
    def _money_row(row: dict[str, Any], s: _Sums, year: int | None) -> dict[str, Any]:
        row["allocated"], row["released"] = fmt(s.allocated), fmt(s.released)
        if year is None:
            row["disbursed"] = fmt(s.disbursed)
            row["available"] = fmt(s.allocated - s.released - s.disbursed)
        return row

    def initiative(self, initiative: str) -> InitiativeTotals | None:
        return self.initiatives.get(initiative)

    def cut(self, sums: list[Row], pledges: list[Row]) -> BalancesModel:
        """The model holding only the facts of a cut by effective date, from the results
        of CUT_SUMS and CUT_PLEDGES (this model, as of the same position, names the
        initiatives registered in the cut)."""
        cut = BalancesModel()
        cut.position = self.position
        for year, initiative, pledged, received, allocated, released, disbursed, registered in (
            sums
        ):
            if year is not None:
                book = cut.years.setdefault(int(year), YearTotals())
                book.pledged += from_cents(int(pledged))
                book.received += from_cents(int(received))
                book.allocated += from_cents(int(allocated))
                book.released += from_cents(int(released))
            if initiative is None:
                continue
            known = self.initiatives.get(initiative)
            totals = cut.initiatives.get(initiative)
            if totals is None:
                totals = cut.initiatives[initiative] = InitiativeTotals(initiative, "", "")
            if registered and known is not None:
                totals.name, totals.country, totals.programme = (known.name, known.country,
                                                                 known.programme)  # fmt: skip
            totals.disbursed += from_cents(int(disbursed))
            if year is not None:
                grant = cut.grants.setdefault((initiative, int(year)), Grant())
                grant.allocated += from_cents(int(allocated))
                grant.released += from_cents(int(released))
        for year, unit_basis in pledges:
            book = cut.years[int(year)]
            book.basis, book.unit_basis = self.years[int(year)].basis, int(unit_basis)
        return cut


def columns_for(by: str, year: int | None) -> tuple[str, ...]:
    """The table columns of `balances --by BY [--year YYYY]`."""
    if by == "year":
        return YEAR_COLUMNS
    columns = INITIATIVE_COLUMNS if by == "initiative" else COUNTRY_COLUMNS
    return columns if year is None else columns[:-2]
