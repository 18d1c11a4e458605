"""The ledger at a cut as IATI activities (docs/iati.md has the mapping for users).

One parent activity for the partnership (`{REF}-partnership_{donor}`): the donor funds,
the charity is accountable and implements; a budget per pledge year; incoming funds for
the receipts. One child activity per initiative (`{REF}-{initiative}`): commitments for
allocations (a release is a negative commitment), disbursements, a budget per pledge
year, results from the milestones. A reversal is a negative transaction of the reversed
fact's type, dated on the reversal's effective date; a reversed milestone is left out.

`--year Y` keeps the money of the Y pledge (receipts, allocations, releases, budgets)
and the disbursements paid in Y; every activity, status, date and result stays.

Streaming: the headers come from one grouped query of the audit trail; each activity's
transactions are read in pages while they are written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from homeledger.adapters.envelope import parse_time
from homeledger.domain.money import ZERO
from homeledger.projections.balances import BalancesModel
from homeledger.projections.cut import LedgerCut, Reversal
from homeledger.projections.db import Tx
from homeledger.projections.iati import codes
from homeledger.projections.iati.schema import schema_errors
from homeledger.projections.iati.writer import (
    Activity,
    ActivityDate,
    ActivityWriter,
    Budget,
    Organisation,
    Result,
    Sector,
    Transaction,
    Written,
)
from homeledger.projections.output_file import replaced_on_success

_CODES = {"FundsAllocated": codes.OUTGOING_COMMITMENT, "AllocationReleased":
          codes.OUTGOING_COMMITMENT, "FundsDisbursed": codes.DISBURSEMENT}  # fmt: skip


class ExportInvalidError(RuntimeError):
    """The export did not validate against the schema: a bug, nothing was written."""


@dataclass(frozen=True)
class ExportOptions:
    reporting_ref: str
    reporting_name: str
    reporting_type: str = codes.INTERNATIONAL_NGO
    year: int | None = None
    sectors: Mapping[str, str] = field(default_factory=dict)  # programme -> DAC code
    validate: bool = True


@dataclass
class _Head:
    """What an initiative's header needs, from the grouped audit trail."""

    registered: date | None = None
    first_allocation: date | None = None
    allocated: dict[int, Decimal] = field(default_factory=dict)
    released: dict[int, Decimal] = field(default_factory=dict)
    funded: bool = False
    last_recorded: str = ""


def slug(value: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "x"


def export_iati(ledger: LedgerCut, out: Path, options: ExportOptions) -> Written:
    """Write the export to `out`: to a file beside it, validated unless told not to,
    then renamed into place. Nothing is left at `out` when anything fails."""
    terms = ledger.terms()
    reporting = Organisation(options.reporting_name, options.reporting_ref,
                             options.reporting_type)  # fmt: skip
    writer = ActivityWriter(reporting, terms.currency, ledger.cut.recorded_at)
    balances = ledger.balances()  # before the read transaction below: it opens its own
    ledger.reversals()
    with replaced_on_success(out) as temporary, ledger.reader.db.read() as tx:
        written = writer.write(temporary, _activities(_Mapper(ledger, tx, options, balances)))
        if options.validate:
            errors = schema_errors(temporary)
            if errors:
                raise ExportInvalidError(
                    f"the export does not validate against IATI 2.03 ({errors[0]}); "
                    "nothing was written"
                )
    return written


def _activities(mapper: _Mapper) -> Iterator[Activity]:
    yield mapper.parent()
    for key in sorted(mapper.balances.initiatives):
        yield mapper.child(key)


class _Mapper:
    def __init__(
        self, ledger: LedgerCut, tx: Tx, options: ExportOptions, balances: BalancesModel
    ) -> None:
        self.ledger, self.tx, self.options = ledger, tx, options
        self.terms = ledger.terms()
        self.balances = balances
        self.reversals = ledger.reversals()
        self.parent_id = f"{options.reporting_ref}-partnership_{slug(self.terms.donor)}"
        self.donor = Organisation(self.terms.donor, None, codes.PRIVATE_SECTOR)
        self.charity = Organisation(self.terms.beneficiary, None, codes.INTERNATIONAL_NGO)
        self.sectors = {
            **codes.DEFAULT_SECTORS,
            **{codes.programme_key(k): v for k, v in options.sectors.items()},
        }
        self.heads = self._heads()

    def _in_year(self, year: int) -> bool:
        return self.options.year is None or year == self.options.year

    def _participants(self) -> list[tuple[Organisation, str]]:
        return [(self.donor, codes.FUNDING), (self.charity, codes.ACCOUNTABLE),
                (self.charity, codes.IMPLEMENTING)]  # fmt: skip

    # The partnership.

    def parent(self) -> Activity:
        t = self.terms
        started = t.start_date <= self.ledger.cut.recorded_at.date()
        return Activity(
            identifier=self.parent_id,
            title=f"{t.donor} and {t.beneficiary}: a giving partnership",
            description=(f"{t.donor} gives {t.currency} {t.rate} per home per year "
                         f"({t.basis} basis) to {t.beneficiary}, from "
                         f"{t.start_date.isoformat()}."),
            hierarchy=1,
            last_updated=self.ledger.cut.recorded_at,  # the partnership covers every fact
            status=codes.IMPLEMENTATION if started else codes.PIPELINE,
            participants=self._participants(),
            dates=[ActivityDate(codes.ACTUAL_START if started else codes.PLANNED_START,
                                t.start_date)],
            sectors=[Sector(codes.DAC_5, codes.PARTNERSHIP_SECTOR)],
            budgets=self._pledge_budgets(),
            related=[(self._child_id(key), codes.RELATED_CHILD)
                     for key in sorted(self.balances.initiatives)],
            transactions=self._receipts(),
        )  # fmt: skip

    def _pledge_budgets(self) -> list[Budget]:
        first: dict[int, Decimal] = {}
        last: dict[int, Decimal] = {}
        for fact in self.ledger.facts("DonationPledged"):
            year = int(fact.data["year"])
            first.setdefault(year, fact.amount())
            last[year] = fact.amount()
        budgets = []
        for year in sorted(first):
            if self._in_year(year):
                budgets.append(Budget(year, first[year], codes.BUDGET_ORIGINAL))
                if last[year] != first[year]:
                    budgets.append(Budget(year, last[year], codes.BUDGET_REVISED))
        return budgets

    def _receipts(self) -> Iterator[Transaction]:
        for fact in self.ledger.facts("DonationReceived"):
            year = int(fact.data["year"])
            if not self._in_year(year):
                continue
            on = date.fromisoformat(str(fact.data.get("received_on", fact.effective_date)))
            yield Transaction(codes.INCOMING_FUNDS, fact.amount(), on, str(fact.position),
                              f"Donation for the {year} pledge", provider=self.donor)  # fmt: skip
            reversal = self.reversals.get(fact.position)
            if reversal is not None:
                yield self._reversed(reversal, codes.INCOMING_FUNDS, fact.amount(),
                                     provider=self.donor)  # fmt: skip

    @staticmethod
    def _reversed(r: Reversal, code: str, amount: Decimal,
                  provider: Organisation | None = None) -> Transaction:  # fmt: skip
        return Transaction(code, -amount, r.effective_date, str(r.position),
                           f"Reversal of position {r.reversed_position}: {r.reason}",
                           provider=provider)  # fmt: skip

    # The initiatives.

    def _child_id(self, key: str) -> str:
        return f"{self.options.reporting_ref}-{key}"

    def _heads(self) -> dict[str, _Head]:
        heads: dict[str, _Head] = {}
        for key, kind, year, _, cents, first, recorded in self.ledger.audit_sums(self.tx):
            head = heads.setdefault(key, _Head())
            head.last_recorded = max(head.last_recorded, recorded)
            amount = Decimal(cents) / 100
            if kind == "InitiativeRegistered":
                head.registered = date.fromisoformat(first)
            elif kind == "FundsAllocated" and year is not None:
                head.allocated[year] = head.allocated.get(year, ZERO) + amount
                start = date.fromisoformat(first)
                head.first_allocation = min(head.first_allocation or start, start)
                head.funded = head.funded or amount > 0
            elif kind == "AllocationReleased" and year is not None:
                head.released[year] = head.released.get(year, ZERO) + amount
            elif kind == "FundsDisbursed":
                head.funded = head.funded or amount > 0
        return heads

    def child(self, key: str) -> Activity:
        info = self.balances.initiatives[key]
        head = self.heads.get(key, _Head())
        last = parse_time(head.last_recorded) if head.last_recorded else \
            self.ledger.cut.recorded_at  # fmt: skip
        for reversal in self.reversals.values():
            if reversal.initiative == key:
                last = max(last, reversal.recorded_at)
        status = codes.IMPLEMENTATION if head.funded else codes.PIPELINE
        if info.closed_on:
            status = codes.CLOSED if head.funded else codes.CANCELLED
        return Activity(
            identifier=self._child_id(key), title=info.name or key,
            description=f"Programme: {info.programme}" if info.programme else info.name or key,
            hierarchy=2, last_updated=last, status=status,
            participants=self._participants(), dates=self._dates(key, head, info.closed_on),
            sectors=self._sectors(info.programme), budgets=self._budgets(head),
            related=[(self.parent_id, codes.RELATED_PARENT)],
            transactions=self._money(key), results=self._results(key),
            country=info.country or None,
        )  # fmt: skip

    def _dates(self, key: str, head: _Head, closed_on: str | None) -> list[ActivityDate]:
        dates = [ActivityDate(codes.PLANNED_START, head.registered or self.terms.start_date)]
        if head.first_allocation is not None:
            dates.append(ActivityDate(codes.ACTUAL_START, head.first_allocation))
        if closed_on:
            rows = self.ledger.audit_rows(self.tx, key, ("InitiativeClosed",))
            reason = next((row.detail or "" for row in rows), "")
            dates.append(ActivityDate(codes.ACTUAL_END, date.fromisoformat(closed_on),
                                      f"Closed: {reason}" if reason else ""))  # fmt: skip
        return dates

    def _sectors(self, programme: str) -> list[Sector]:
        found = self.sectors.get(codes.programme_key(programme))
        own = Sector(codes.REPORTING_ORGANISATION, slug(programme), programme or "programme")
        return [Sector(codes.DAC_5, found), own] if found else [own]

    def _budgets(self, head: _Head) -> list[Budget]:
        budgets = []
        for year in sorted(head.allocated.keys() | head.released.keys()):
            if not self._in_year(year):
                continue
            gross = head.allocated.get(year, ZERO)
            released = head.released.get(year, ZERO)
            budgets.append(Budget(year, gross, codes.BUDGET_ORIGINAL))
            if released:
                budgets.append(Budget(year, gross - released, codes.BUDGET_REVISED))
        return budgets

    def _money(self, key: str) -> Iterator[Transaction]:
        for row in self.ledger.audit_rows(self.tx, key, tuple(_CODES)):
            amount, on = row.amount or ZERO, row.effective
            if row.type == "FundsDisbursed":
                reversal = self.reversals.get(row.position)
                if self._in_year(on.year):
                    yield Transaction(codes.DISBURSEMENT, amount, on, str(row.position))
                if reversal is not None and self._in_year(reversal.effective_date.year):
                    yield self._reversed(reversal, codes.DISBURSEMENT, amount)
            elif row.year is not None and self._in_year(row.year):
                released = row.type == "AllocationReleased"
                note = (
                    f"Release of allocation {row.allocation_id}: {row.detail}"
                    if released
                    else f"Allocation {row.allocation_id} from the {row.year} pledge"
                )
                yield Transaction(codes.OUTGOING_COMMITMENT, -amount if released else amount,
                                  on, str(row.position), note)  # fmt: skip

    def _results(self, key: str) -> Iterator[Result]:
        for row in self.ledger.audit_rows(self.tx, key, ("MilestoneReached",)):
            if row.position in self.reversals:
                continue  # a reversed milestone was not reached
            milestone = self.ledger.milestone(row)
            yield Result(milestone.name, row.effective, milestone.evidence)


def generated_at(ledger: LedgerCut) -> datetime:
    return ledger.cut.recorded_at
