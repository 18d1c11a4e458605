"""What the yearly statement shows: plain frozen view objects, built from the ledger at a cut.

The view decides what to show; the template only how. Every figure is the one the read
models give at the cut (`balances`, `audit`), so the statement and those commands agree
by construction; the positions behind each figure let an auditor go back to the facts
(`homeledger events show N`).

Large ledgers: with more than DETAIL_LIMIT facts in the year (or more than
MAX_INITIATIVE_SECTIONS initiatives), the statement groups the initiatives per country
and gives, for each, how many facts and which positions lie behind its figures instead
of one line per fact (`homeledger audit ID` lists them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from homeledger.domain.money import ZERO
from homeledger.domain.pledge import Terms, days_in_year
from homeledger.domain.portfolio import Portfolio
from homeledger.projections.balances import BalancesModel
from homeledger.projections.cut import Cut, LedgerCut, Reversal, TrailRow
from homeledger.projections.db import Tx
from homeledger.projections.verify import VerifyReport

DETAIL_LIMIT = 5000
MAX_INITIATIVE_SECTIONS = 300
LISTED_POSITIONS = 12
HISTORY_YEARS = 5
MONEY_REVERSALS = ("DonationReceived", "FundsDisbursed")
YEAR_ROW_TYPES = ("FundsAllocated", "AllocationReleased")
FIGURES = {"FundsAllocated": "allocated", "AllocationReleased": "released",
           "FundsDisbursed": "disbursed"}  # fmt: skip
LABELS = {
    "InitiativeRegistered": "registered",
    "FundsAllocated": "allocated",
    "AllocationReleased": "released",
    "FundsDisbursed": "disbursed",
    "MilestoneReached": "milestone reached",
    "InitiativeClosed": "closed",
}


@dataclass
class Positions:
    """The facts behind one figure: how many, the first few, and the range."""

    count: int = 0
    first: int | None = None
    last: int | None = None
    listed: list[int] = field(default_factory=list)

    def add(self, position: int) -> None:
        self.count += 1
        self.first = position if self.first is None else min(self.first, position)
        self.last = position if self.last is None else max(self.last, position)
        if len(self.listed) < LISTED_POSITIONS:
            self.listed.append(position)
        elif position < max(self.listed):  # keep the first few by position
            self.listed.remove(max(self.listed))
            self.listed.append(position)

    @property
    def shown(self) -> list[int]:
        return sorted(self.listed)

    @property
    def complete(self) -> bool:
        return self.count == len(self.listed)


@dataclass(frozen=True)
class Figures:
    """One column of figures (the year's, or since the start)."""

    pledged: Decimal
    received: Decimal
    outstanding: Decimal
    allocated: Decimal
    released: Decimal
    unallocated: Decimal
    disbursed: Decimal
    reversed: Decimal
    available: Decimal | None = None


@dataclass(frozen=True)
class CountryHomes:
    country: str
    homes: int  # held on 31 December of the year
    unit_days: int | None  # pro-rata: each home for the days it was held in the year


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Integrity:
    cut: Cut
    seal_position: int | None  # the position the last seal covers up to
    seal_digest: str | None
    sealed_at: int | None  # the position of the LedgerSealed fact itself
    checks: tuple[CheckResult, ...]  # empty when verify was not run
    verified: bool | None  # None: not run
    verified_through: int | None


@dataclass(frozen=True)
class Line:
    """One fact behind an initiative's figures."""

    position: int
    effective_date: date
    type: str
    label: str
    amount: Decimal | None  # the signed change to the initiative's balance
    year: int | None
    allocation_id: str | None
    detail: str
    evidence: str = ""
    reversed_by: int | None = None


@dataclass(frozen=True)
class MilestoneItem:
    initiative: str
    name: str
    reached_on: date
    evidence: str
    position: int
    reversed_by: int | None = None


@dataclass(frozen=True)
class InitiativeView:
    key: str
    name: str
    country: str
    programme: str
    closed_on: str | None
    year_allocated: Decimal
    year_released: Decimal
    year_disbursed: Decimal
    allocated: Decimal  # since the start (balances --by initiative)
    released: Decimal
    disbursed: Decimal
    available: Decimal
    lines: tuple[Line, ...]
    facts: int  # facts of the year behind its figures
    first_position: int | None
    last_position: int | None

    @property
    def year_net(self) -> Decimal:
        return self.year_allocated - self.year_released


@dataclass(frozen=True)
class CountryGroup:
    country: str
    initiatives: tuple[InitiativeView, ...]


@dataclass(frozen=True)
class ReceiptLine:
    position: int
    received_on: date
    amount: Decimal


@dataclass(frozen=True)
class PledgeLine:
    position: int
    effective_date: date
    amount: Decimal
    delta: Decimal
    unit_basis: int


@dataclass(frozen=True)
class ReversalLine:
    position: int
    effective_date: date
    reversed_position: int
    reversed_type: str
    amount: Decimal | None
    initiative: str | None
    reason: str


@dataclass(frozen=True)
class YearRow:
    year: int
    pledged: Decimal
    received: Decimal
    allocated: Decimal
    released: Decimal


@dataclass(frozen=True)
class Statement:
    terms: Terms
    year: int
    integrity: Integrity
    pledge_recorded: bool
    basis: str
    unit_basis: int
    year_figures: Figures
    total: Figures
    positions: dict[str, Positions]  # the facts behind each year figure
    homes: tuple[CountryHomes, ...]
    homes_history: tuple[tuple[int, dict[str, int]], ...]  # (year, homes per country on 31 Dec)
    years: tuple[YearRow, ...]
    by_country: tuple[tuple[str, Decimal], ...]  # the year's money allocated, net
    by_programme: tuple[tuple[str, Decimal], ...]
    initiatives: tuple[InitiativeView, ...]
    detailed: bool
    milestones: tuple[MilestoneItem, ...]  # reached in the year (listed when detailed)
    milestone_months: tuple[int, ...]  # reached in the year per month, not reversed
    pledges: tuple[PledgeLine, ...]
    receipts: tuple[ReceiptLine, ...]
    reversals: tuple[ReversalLine, ...]

    @property
    def countries(self) -> tuple[CountryGroup, ...]:
        """The initiatives per country (how a large ledger's statement groups them)."""
        return _per_country(self.initiatives)

    @property
    def homes_total(self) -> int:
        return sum(h.homes for h in self.homes)

    @property
    def unit_days_total(self) -> int:
        return sum(h.unit_days or 0 for h in self.homes)


Verifier = Callable[[], VerifyReport]


def build_statement(ledger: LedgerCut, year: int, verifier: Verifier | None) -> Statement:
    """The statement of `year` at the ledger's cut; `verifier` runs `verify` (None: not run)."""
    terms = ledger.terms()
    balances = ledger.balances()
    reversals = ledger.reversals()
    activity = _Activity(year, reversals, len(balances.initiatives) <= MAX_INITIATIVE_SECTIONS)
    first, last = date(year, 1, 1).isoformat(), date(year, 12, 31).isoformat()
    with ledger.reader.db.read() as tx:
        for row in ledger.audit_rows(
            tx, where="year = ? OR (effective_date >= ? AND effective_date <= ?)",
            params=(year, first, last),
        ):  # fmt: skip
            activity.add(row, ledger)
        detailed = activity.detailed
        pledges, receipts, received = _pledges_and_receipts(ledger, tx, year, detailed)
    year_figures, total = _figures(balances, year, activity, reversals)
    homes, history = _homes(ledger, terms, year)
    totals = balances.years.get(year)
    return Statement(
        terms=terms, year=year, integrity=_integrity(ledger, verifier),
        pledge_recorded=totals is not None and bool(totals.basis),
        basis=totals.basis if totals and totals.basis else terms.basis,
        unit_basis=totals.unit_basis if totals else 0,
        year_figures=year_figures, total=total,
        positions={"pledged": _positions(p.position for p in pledges), "received": received,
                   **activity.positions},
        homes=homes, homes_history=history, years=_years(balances),
        by_country=_by_key(balances, year, lambda info: info.country),
        by_programme=_by_key(balances, year, lambda info: info.programme),
        initiatives=tuple(_initiatives(balances, activity)),
        detailed=detailed, milestones=tuple(activity.milestones),
        milestone_months=tuple(activity.months), pledges=tuple(pledges),
        receipts=tuple(receipts), reversals=tuple(_reversal_lines(reversals, year)),
    )  # fmt: skip


def _positions(positions: Iterable[int]) -> Positions:
    found = Positions()
    for position in positions:
        found.add(position)
    return found


class _Activity:
    """One pass over the year's audit rows, in position order: per initiative its year
    sums and the span of positions behind them; its lines while the year has at most
    DETAIL_LIMIT facts (beyond, the statement groups the initiatives per country)."""

    def __init__(self, year: int, reversals: dict[int, Reversal], few: bool) -> None:
        self.year = year
        self.reversals = reversals
        self.detailed = few
        self.facts = 0
        self.lines: dict[str, list[Line]] = {}
        self.sums: dict[str, dict[str, Decimal]] = {}
        self.span: dict[str, Positions] = {}
        self.milestones: list[MilestoneItem] = []
        self.months = [0] * 12
        self.positions = {name: Positions() for name in ("allocated", "released", "disbursed")}

    def add(self, row: TrailRow, ledger: LedgerCut) -> None:
        kind, key, effective = row.type, row.initiative, row.effective
        if kind in YEAR_ROW_TYPES and row.year != self.year:
            return
        if kind not in LABELS or (kind not in YEAR_ROW_TYPES and effective.year != self.year):
            return  # a reversal's own line is shown from the reversal (_reversal_lines)
        position = row.position
        reversed_by = self.reversals[position].position if position in self.reversals else None
        self.facts += 1
        if self.facts > DETAIL_LIMIT and self.detailed:
            self.detailed = False
            self.lines, self.milestones = {}, []
        self.span.setdefault(key, Positions()).add(position)
        amount = row.amount
        figure = FIGURES.get(kind)
        if figure is not None and amount is not None:
            sums = self.sums.setdefault(key, {})
            sums[figure] = sums.get(figure, ZERO) + amount
            self.positions[figure].add(position)
            if reversed_by is not None and kind == "FundsDisbursed":
                sums[figure] -= amount  # a reversal takes the fact out of every figure
        if kind == "MilestoneReached" and reversed_by is None:
            self.months[effective.month - 1] += 1
        if self.detailed:
            self._line(row, ledger, effective, reversed_by)

    def _line(self, row: TrailRow, ledger: LedgerCut, effective: date,
              reversed_by: int | None) -> None:  # fmt: skip
        detail, evidence = row.detail or "", ""
        if row.type == "MilestoneReached":
            milestone = ledger.milestone(row)
            detail, evidence = milestone.name, milestone.evidence
            self.milestones.append(MilestoneItem(row.initiative, milestone.name, effective,
                                                 evidence, row.position, reversed_by))  # fmt: skip
        self.lines.setdefault(row.initiative, []).append(Line(
            row.position, effective, row.type, LABELS[row.type], row.change, row.year,
            row.allocation_id, detail, evidence, reversed_by,
        ))  # fmt: skip


def _initiatives(balances: BalancesModel, activity: _Activity) -> list[InitiativeView]:
    totals = {row["initiative"]: row for row in balances.rows("initiative")}
    views = []
    for key, info in sorted(balances.initiatives.items()):
        total = totals.get(key, {})
        sums = activity.sums.get(key, {})
        span = activity.span.get(key, Positions())
        views.append(InitiativeView(
            key=key, name=info.name, country=info.country, programme=info.programme,
            closed_on=info.closed_on,
            year_allocated=sums.get("allocated", ZERO), year_released=sums.get("released", ZERO),
            year_disbursed=sums.get("disbursed", ZERO),
            allocated=Decimal(total.get("allocated", "0.00")),
            released=Decimal(total.get("released", "0.00")),
            disbursed=Decimal(total.get("disbursed", "0.00")),
            available=Decimal(total.get("available", "0.00")),
            lines=tuple(activity.lines.get(key, ())), facts=span.count,
            first_position=span.first, last_position=span.last,
        ))  # fmt: skip
    return views


def _per_country(initiatives: Iterable[InitiativeView]) -> tuple[CountryGroup, ...]:
    groups: dict[str, list[InitiativeView]] = {}
    for view in initiatives:
        groups.setdefault(view.country, []).append(view)
    return tuple(CountryGroup(country, tuple(views)) for country, views in sorted(groups.items()))


def _figures(balances: BalancesModel, year: int, activity: _Activity,
             reversals: dict[int, Reversal]) -> tuple[Figures, Figures]:  # fmt: skip
    rows = balances.year_rows()
    this = next((row for row in rows if row["year"] == year), None)
    money = [r for r in reversals.values() if r.reversed_type in MONEY_REVERSALS]
    disbursed_year = sum((s.get("disbursed", ZERO) for s in activity.sums.values()), ZERO)

    def total(name: str, only: list[dict[str, Any]]) -> Decimal:
        return sum((Decimal(row[name]) for row in only), ZERO)

    year_rows = [this] if this else []
    by_initiative = balances.rows("initiative")
    year_figures = Figures(
        pledged=total("pledged", year_rows),
        received=total("received", year_rows),
        outstanding=total("outstanding", year_rows),
        allocated=total("allocated", year_rows),
        released=total("released", year_rows),
        unallocated=total("unallocated", year_rows),
        disbursed=disbursed_year,
        reversed=sum((r.amount for r in money if r.effective_date.year == year), ZERO),
    )
    cumulative = Figures(
        pledged=total("pledged", rows),
        received=total("received", rows),
        outstanding=total("outstanding", rows),
        allocated=total("allocated", rows),
        released=total("released", rows),
        unallocated=total("unallocated", rows),
        disbursed=total("disbursed", by_initiative),
        reversed=sum((r.amount for r in money), ZERO),
        available=total("available", by_initiative),
    )
    return year_figures, cumulative


def _pledges_and_receipts(
    ledger: LedgerCut, tx: Tx, year: int, detailed: bool
) -> tuple[list[PledgeLine], list[ReceiptLine], Positions]:
    """The year's pledges (few) and receipts: listed from the store for a detailed
    statement (or with --to), else counted from the postings."""
    pledges = [
        PledgeLine(fact.position, fact.effective_date, fact.amount(),
                   Decimal(str(fact.data.get("delta", "0"))), int(fact.data.get("unit_basis") or 0))
        for fact in ledger.facts("DonationPledged") if fact.data.get("year") == year
    ]  # fmt: skip
    receipts: list[ReceiptLine] = []
    received = Positions()
    if detailed or ledger.cut.to is not None:
        for fact in ledger.facts("DonationReceived"):
            if fact.data.get("year") == year:
                received.add(fact.position)
                if detailed and len(receipts) < DETAIL_LIMIT:
                    receipts.append(ReceiptLine(fact.position, fact.effective_date, fact.amount()))
        return pledges, receipts, received
    count, first, last, listed = ledger.receipts(tx, year)
    return pledges, receipts, Positions(count, first, last, listed)


def _homes(
    ledger: LedgerCut, terms: Terms, year: int
) -> tuple[tuple[CountryHomes, ...], tuple[tuple[int, dict[str, int]], ...]]:
    portfolio = ledger.portfolio().portfolio
    year_end = date(year, 12, 31)
    first = max(date(year, 1, 1), terms.start_date)
    homes = []
    for country, entries in sorted(portfolio.changes.items()):
        held = portfolio.held(country, year_end)
        unit_days = None
        if terms.basis == "pro-rata":
            unit_days = Portfolio({country: entries}).unit_days(first, year_end)
        if held or unit_days:
            homes.append(CountryHomes(country, held, unit_days))
    start = max(terms.start_date.year, year - HISTORY_YEARS + 1)
    history = tuple((y, portfolio.held_by_country(date(y, 12, 31))) for y in range(start, year + 1))
    return tuple(homes), history


def _years(balances: BalancesModel) -> tuple[YearRow, ...]:
    return tuple(
        YearRow(y, t.pledged, t.received, t.allocated, t.released)
        for y, t in sorted(balances.years.items())
    )


def _by_key(balances: BalancesModel, year: int,
            key: Callable[[Any], str]) -> tuple[tuple[str, Decimal], ...]:  # fmt: skip
    sums: dict[str, Decimal] = {}
    for (initiative, grant_year), grant in balances.grants.items():
        info = balances.initiatives.get(initiative)
        if grant_year != year or info is None:
            continue
        name = key(info)
        sums[name] = sums.get(name, ZERO) + grant.allocated - grant.released
    return tuple(sorted(sums.items()))


def _reversal_lines(reversals: dict[int, Reversal], year: int) -> list[ReversalLine]:
    return [
        ReversalLine(r.position, r.effective_date, r.reversed_position, r.reversed_type,
                     r.amount if "amount" in r.original else None, r.initiative, r.reason)
        for r in sorted(reversals.values(), key=lambda r: r.position)
        if r.effective_date.year == year
    ]  # fmt: skip


def _integrity(ledger: LedgerCut, verifier: Verifier | None) -> Integrity:
    seal = None
    for fact in ledger.facts("LedgerSealed"):
        seal = fact
    checks: tuple[CheckResult, ...] = ()
    verified: bool | None = None
    through = None
    if verifier is not None:
        report = verifier()
        checks = tuple(_at_cut(check, ledger.cut.position) for check in report.checks)
        verified = all(check.ok for check in checks)
        through = report.head
    return Integrity(
        cut=ledger.cut,
        seal_position=int(seal.data["position"]) if seal else None,
        seal_digest=str(seal.data["digest"]) if seal else None,
        sealed_at=seal.position if seal else None,
        checks=checks, verified=verified, verified_through=through,
    )  # fmt: skip


def _at_cut(check: Any, position: int) -> CheckResult:
    """A verify check as it stands for the facts at positions 1..`position`: a finding
    after the cut does not concern them; one without a position does."""
    found = [(p, m) for p, m in check.findings if p is None or p <= position]
    if not found:
        return CheckResult(check.name, True, check.summary)
    where, message = min(found, key=lambda f: (f[0] is None, f[0] or 0))
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return CheckResult(
        check.name, False, f"{'position ' + str(where) + ': ' if where else ''}{message}{more}"
    )


def issued(moment: datetime) -> date:
    """The statement's date: the day its cut was recorded (never the wall clock)."""
    return moment.date()


def year_days(year: int) -> int:
    return days_in_year(year)
