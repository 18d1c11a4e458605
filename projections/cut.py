"""The ledger at a cut: what the documents (the statement, the IATI export) read.

A cut is a position of the ledger (the facts at positions 1..N), optionally narrowed to
the facts effective on or before a date (`--to DATE`; a reversal counts where the fact
it reverses counts, as for `balances` and `audit`). Everything here reads the stored
read models at the cut through the point-in-time reader, and the few facts the models do
not keep (the partnership's terms, pledges, receipts, reversals) from the store by type,
in pages: nothing holds all the facts in memory.

`FactReversed` facts are read from their stored bodies by their wire fields (`reverses`,
`reversed_type`, `reversed_position`, `reason`, `original`), so this code does not need
the fact's class to be known to the domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from homeledger.adapters.envelope import parse_time
from homeledger.adapters.store import LedgerStore
from homeledger.domain.events import effect_date, event_from_data
from homeledger.domain.money import ZERO
from homeledger.domain.pledge import Terms
from homeledger.projections.as_of import PointInTime
from homeledger.projections.audit_trail import AUDIT
from homeledger.projections.balances import BalancesModel
from homeledger.projections.db import Tx
from homeledger.projections.double_entry import CASH, POSTINGS, receivable
from homeledger.projections.model import from_cents
from homeledger.projections.portfolio import PortfolioModel
from homeledger.projections.timeline import TIMELINE

REVERSED = "FactReversed"
PAGE = 2000
_EVIDENCE = " [evidence: "


class NothingToShowError(ValueError):
    """The ledger has no partnership at the cut: there is nothing to state or export."""


@dataclass(frozen=True)
class Cut:
    """Where a document was built from: the last fact at or below the asked position,
    when it was recorded, its hash, and the effective-date bound (if any)."""

    position: int
    recorded_at: datetime
    head_hash: str
    to: date | None = None

    def admits(self, effective: date) -> bool:
        return self.to is None or effective <= self.to


@dataclass(frozen=True)
class Fact:
    """A stored fact read by type: its position, times, and wire `data`."""

    position: int
    type: str
    event_id: str
    effective_date: date
    recorded_at: datetime
    data: dict[str, Any]

    def amount(self) -> Decimal:
        return Decimal(str(self.data.get("amount", "0")))


@dataclass(frozen=True)
class Reversal:
    """A FactReversed: which fact it reverses, and the reversed fact's data."""

    position: int
    event_id: str
    effective_date: date
    recorded_at: datetime
    reversed_position: int
    reversed_type: str
    reason: str
    original: dict[str, Any]

    @property
    def amount(self) -> Decimal:
        return Decimal(str(self.original.get("amount", "0")))

    @property
    def initiative(self) -> str | None:
        value = self.original.get("initiative")
        return str(value) if value is not None else None

    @classmethod
    def from_fact(cls, fact: Fact) -> Reversal:
        data = fact.data
        original = data.get("original")
        return cls(
            position=fact.position, event_id=fact.event_id,
            effective_date=fact.effective_date, recorded_at=fact.recorded_at,
            reversed_position=int(data.get("reversed_position") or 0),
            reversed_type=str(data.get("reversed_type") or ""),
            reason=str(data.get("reason") or ""),
            original=original if isinstance(original, dict) else {},
        )  # fmt: skip


TRAIL_COLUMNS = ("initiative", "position", "recorded_at", "effective_date", "type",
                 "allocation_id", "year", "amount", "change", "detail")  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrailRow:
    """The columns of an audit-trail row the documents use (money in cents)."""

    initiative: str
    position: int
    recorded_at: str
    effective_date: str
    type: str
    allocation_id: str | None
    year: int | None
    cents: int | None
    change_cents: int | None
    detail: str

    @property
    def amount(self) -> Decimal | None:
        return None if self.cents is None else from_cents(self.cents)

    @property
    def change(self) -> Decimal | None:
        return None if self.change_cents is None else from_cents(self.change_cents)

    @property
    def effective(self) -> date:
        return date.fromisoformat(self.effective_date)


@dataclass(frozen=True)
class Milestone:
    name: str
    evidence: str


class LedgerCut:
    """Reads of the ledger at one cut. Build with `open_cut`."""

    def __init__(self, store: LedgerStore, reader: PointInTime, cut: Cut) -> None:
        self.store = store
        self.reader = reader
        self.cut = cut
        self._terms: Terms | None = None
        self._reversals: dict[int, Reversal] | None = None

    # The facts the read models do not keep, from the store by type.

    def facts(self, *types: str) -> Iterator[Fact]:
        """Stored facts of these types up to the cut (and effective by `--to`), in order."""
        for notification in self.store.notifications(1, self.cut.position, types, page=PAGE):
            body = self.store.decode_body(notification)
            effective = date.fromisoformat(body["effective_date"])
            if not self.cut.admits(_counts_on(body, effective)):
                continue
            yield Fact(notification.id, body["type"], body["event_id"], effective,
                       parse_time(body["recorded_at"]), body.get("data") or {})  # fmt: skip

    def terms(self) -> Terms:
        if self._terms is None:
            notes = self.store.notifications(1, self.cut.position, ["PartnershipEstablished"],
                                             page=1)  # fmt: skip
            first = next(iter(notes), None)
            if first is None:
                raise NothingToShowError(
                    f"no partnership is recorded as of position {self.cut.position}"
                )
            data = self.store.decode_body(first)["data"]
            self._terms = Terms(data["donor"], data["beneficiary"], Decimal(data["rate"]),
                                data["currency"], data["basis"],
                                date.fromisoformat(data["start_date"]))  # fmt: skip
        return self._terms

    def established_at(self) -> datetime:
        first = next(iter(self.facts("PartnershipEstablished")), None)
        return first.recorded_at if first else self.cut.recorded_at

    def reversals(self) -> dict[int, Reversal]:
        """Every reversal at the cut, by the position of the fact it reverses (few: they
        are corrections)."""
        if self._reversals is None:
            self._reversals = {}
            for fact in self.facts(REVERSED):
                reversal = Reversal.from_fact(fact)
                self._reversals[reversal.reversed_position] = reversal
        return self._reversals

    # The read models at the cut.

    def balances(self) -> BalancesModel:
        """The balances at the cut (with `--to`, of the facts effective by then): what
        `balances` prints for it."""
        return self.reader.balances(self.cut.position, self.cut.to)

    def portfolio(self) -> PortfolioModel:
        model = self.reader.model(PortfolioModel.NAME, self.cut.position)
        assert isinstance(model, PortfolioModel)
        if self.cut.to is None:
            return model
        narrowed = PortfolioModel()  # only the changes effective by --to
        for country, entries in model.portfolio.changes.items():
            for on, delta in entries:
                if on <= self.cut.to:
                    narrowed.portfolio.apply(country, on, delta)
        return narrowed

    def audit_rows(self, tx: Tx, initiative: str | None = None, types: tuple[str, ...] = (),
                   where: str = "", params: tuple[Any, ...] = ()
                   ) -> Iterator[TrailRow]:  # fmt: skip
        """Audit-trail rows at the cut (and effective by `--to`) in position order, of one
        initiative or of all, in pages (each starts after the last position of the one
        before: a seek on the table's key, or on the (initiative, position) index).

        Run inside one read transaction (`reader.db.read()`), so that every page sees
        the same rows."""
        bound, extra = self._bounds()
        if initiative is not None:
            extra += " AND initiative = ?"
            bound += (initiative,)
        if types:
            extra += f" AND type IN ({', '.join('?' * len(types))})"
            bound += types
        if where:
            extra += f" AND ({where})"
            bound += params
        sql = (f"SELECT {', '.join(TRAIL_COLUMNS)} FROM {AUDIT.name} WHERE position <= ?"
               f"{extra} AND position > ? ORDER BY position LIMIT {PAGE}")  # fmt: skip
        after = 0
        while True:
            rows = tx.query(sql, (*bound, after))
            yield from (TrailRow(*row) for row in rows)
            if len(rows) < PAGE:
                return
            after = int(rows[-1][1])

    def receipts(self, tx: Tx, year: int) -> tuple[int, int | None, int | None, list[int]]:
        """The receipts for a pledge year at the cut, from the double-entry postings (each
        debits cash and credits the year's receivable): (count, first and last position,
        the first few positions). Not with `--to` (postings have no effective date)."""
        sql = (f"FROM {POSTINGS.name} p JOIN {POSTINGS.name} c ON c.position = p.position "
               "AND c.account = ? AND c.debit > 0 WHERE p.account = ? AND p.credit > 0 "
               "AND p.position <= ?")  # fmt: skip
        params = (CASH, receivable(year), self.cut.position)
        count, first, last = tx.query(f"SELECT COUNT(*), MIN(p.position), MAX(p.position) {sql}",
                                      params)[0]  # fmt: skip
        listed = tx.query(f"SELECT p.position {sql} ORDER BY p.position LIMIT 12", params)
        return int(count), first, last, [int(row[0]) for row in listed]

    def audit_sums(self, tx: Tx) -> list[tuple[str, str, int | None, int, int, str, str]]:
        """Per initiative, type and year: (initiative, type, year, facts, cents, first
        effective date, last recorded time), at the cut."""
        bound, extra = self._bounds()
        rows = tx.query(
            f"SELECT initiative, type, year, COUNT(*), COALESCE(SUM(amount), 0), "
            f"MIN(effective_date), MAX(recorded_at) FROM {AUDIT.name} WHERE position <= ?"
            f"{extra} GROUP BY initiative, type, year ORDER BY initiative, type, year",
            bound,
        )
        return [(str(a), str(b), None if c is None else int(c), int(d), int(e), str(f), str(g))
                for a, b, c, d, e, f, g in rows]  # fmt: skip

    def _bounds(self) -> tuple[tuple[Any, ...], str]:
        if self.cut.to is None:
            return (self.cut.position,), ""
        # A reversal's line counts on the date of the line it reverses.
        counts_on = (f"COALESCE((SELECT r.effective_date FROM {AUDIT.name} r WHERE r.position "
                     f"= {AUDIT.name}.reversed_position), effective_date)")  # fmt: skip
        return (self.cut.position, self.cut.to.isoformat()), f" AND {counts_on} <= ?"

    def milestone(self, row: TrailRow) -> Milestone:
        """A milestone's name and evidence from its audit row; from the stored fact when
        the row's text cannot be split without doubt."""
        detail = row.detail or ""
        if detail.count(_EVIDENCE) == 0:
            return Milestone(detail, "")
        if detail.count(_EVIDENCE) == 1 and detail.endswith("]"):
            name, evidence = detail[:-1].split(_EVIDENCE)
            return Milestone(name, evidence)
        position = row.position
        note = next(iter(self.store.notifications(position, position)), None)
        data = self.store.decode_body(note)["data"] if note else {}
        return Milestone(str(data.get("milestone", detail)), str(data.get("evidence", "")))


def open_cut(store: LedgerStore, reader: PointInTime, position: int,
             to: date | None = None) -> LedgerCut:  # fmt: skip
    """The cut at the last fact at or below `position` (positions may have holes)."""
    with reader.db.read() as tx:
        found = tx.query(
            f"SELECT position, recorded_at FROM {TIMELINE.name} WHERE position = "
            f"(SELECT MAX(position) FROM {TIMELINE.name} WHERE position <= ?)",
            (position,),
        )
    if not found:
        raise NothingToShowError(f"the ledger has no facts as of position {position}")
    last, recorded = int(found[0][0]), parse_time(str(found[0][1]))
    note = next(iter(store.notifications(last, last)), None)
    head_hash = str(store.decode_body(note).get("hash", "")) if note else ""
    ledger = LedgerCut(store, reader, Cut(last, recorded, head_hash, to))
    ledger.terms()  # refuse a ledger without a partnership before anything else
    return ledger


def _counts_on(body: dict[str, Any], effective: date) -> date:
    """The date a stored fact counts on in a cut by effective date (a reversal: its
    reversed fact's)."""
    if body.get("type") != REVERSED:
        return effective
    fact = event_from_data(str(body["type"]), int(body["schema_version"]), body["data"])
    return effect_date(fact, effective)


def cents_text(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01")) if cents else ZERO
