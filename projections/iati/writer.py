"""IATI 2.03 activity XML, written as it streams: plain activities in, bytes out.

Each activity's header (identifier, organisations, status, dates, sectors, budgets) is
known before it is written; its transactions and results are iterables consumed once,
one small element at a time, so memory stays flat however many there are. Elements
follow the order of the schema's `iati-activity` sequence. The same activities give
the same bytes: no clock, attributes in a fixed order, one money format, text NFC.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from homeledger.domain.money import fmt
from homeledger.projections.iati import codes

IATI_VERSION = "2.03"
XML_LANG = "xml:lang"  # by its literal name: xmlfile would otherwise bind an ns0 prefix
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FORMATS = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".png": "image/png", ".csv": "text/csv", ".txt": "text/plain",
            ".doc": "application/msword", ".xls": "application/vnd.ms-excel"}  # fmt: skip


@dataclass(frozen=True)
class Organisation:
    name: str
    ref: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Transaction:
    code: str  # TransactionType
    amount: Decimal  # signed: a release or a reversal is negative
    on: date
    ref: str  # the ledger position of the fact
    note: str = ""
    provider: Organisation | None = None
    receiver: Organisation | None = None


@dataclass(frozen=True)
class Budget:
    year: int
    amount: Decimal
    type: str  # BudgetType


@dataclass(frozen=True)
class ActivityDate:
    type: str  # ActivityDateType
    on: date
    note: str = ""


@dataclass(frozen=True)
class Sector:
    vocabulary: str
    code: str
    narrative: str = ""


@dataclass(frozen=True)
class Result:
    name: str
    reached_on: date
    evidence: str


@dataclass
class Activity:
    identifier: str
    title: str
    description: str
    hierarchy: int
    last_updated: datetime
    status: str
    participants: list[tuple[Organisation, str]]  # (organisation, OrganisationRole)
    dates: list[ActivityDate]
    sectors: list[Sector]
    budgets: list[Budget]
    related: list[tuple[str, str]]  # (identifier, RelatedActivityType)
    transactions: Iterable[Transaction] = ()
    results: Iterable[Result] = ()
    country: str | None = None


@dataclass
class Written:
    """What was written: activities, transactions, and per activity per code the sum."""

    activities: int = 0
    transactions: int = 0
    sums: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def add(self, activity: str, code: str, amount: Decimal) -> None:
        per = self.sums.setdefault(activity, {})
        per[code] = per.get(code, Decimal(0)) + amount
        self.transactions += 1


@lru_cache(maxsize=8192)
def text(value: str) -> str:
    """Text fit for XML 1.0 (control characters become U+FFFD), NFC-normalised."""
    return _NOT_XML.sub("\ufffd", unicodedata.normalize("NFC", value))


def iso_time(moment: datetime) -> str:
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def evidence_url(evidence: str) -> str | None:
    """The evidence when it is a web address (then a document link), else None."""
    if not evidence or len(evidence) > 2000 or any(c.isspace() for c in evidence):
        return None
    try:
        parts = urlsplit(evidence)
    except ValueError:
        return None
    return evidence if parts.scheme in ("http", "https") and parts.netloc else None


def _narrated(tag: str, value: str, attrib: dict[str, str] | None = None) -> Any:
    element = etree.Element(tag, attrib or {})
    etree.SubElement(element, "narrative").text = text(value)
    return element


def _organisation(tag: str, org: Organisation, **extra: str) -> Any:
    attrib = {key: value for key, value in (("ref", org.ref), ("type", org.type)) if value}
    return _narrated(tag, org.name, {**attrib, **extra})


def _empty(tag: str, **attrib: str) -> Any:
    return etree.Element(tag, {key.replace("_", "-"): value for key, value in attrib.items()})


def _budget(budget: Budget, currency: str, cut: date) -> Any:
    start, end = date(budget.year, 1, 1), date(budget.year, 12, 31)
    element = etree.Element("budget", {"type": budget.type, "status": codes.BUDGET_COMMITTED})
    etree.SubElement(element, "period-start", {"iso-date": start.isoformat()})
    etree.SubElement(element, "period-end", {"iso-date": end.isoformat()})
    value = etree.SubElement(
        element, "value", {"currency": currency, "value-date": min(start, cut).isoformat()}
    )
    value.text = fmt(budget.amount)
    return element


def _transaction(t: Transaction, currency: str) -> Any:
    element = etree.Element("transaction", {"ref": t.ref})
    etree.SubElement(element, "transaction-type", {"code": t.code})
    etree.SubElement(element, "transaction-date", {"iso-date": t.on.isoformat()})
    value = etree.SubElement(element, "value", {"currency": currency,
                                                "value-date": t.on.isoformat()})  # fmt: skip
    value.text = fmt(t.amount)
    if t.note:
        element.append(_narrated("description", t.note))
    if t.provider is not None:
        element.append(_organisation("provider-org", t.provider))
    if t.receiver is not None:
        element.append(_organisation("receiver-org", t.receiver))
    return element


def _result(r: Result) -> Any:
    element = etree.Element("result", {"type": codes.OUTPUT, "aggregation-status": "0"})
    element.append(_narrated("title", r.name))
    url = evidence_url(r.evidence)
    if r.evidence and url is None:
        element.append(_narrated("description", f"Evidence: {r.evidence}"))
    if url is not None:
        path = urlsplit(url).path.lower()
        kind = next((m for ext, m in _FORMATS.items() if path.endswith(ext)), "text/html")
        link = etree.SubElement(element, "document-link", {"url": url, "format": kind})
        link.append(_narrated("title", f"Evidence: {r.name}"))
        etree.SubElement(link, "category", {"code": codes.RESULTS_DOCUMENT})
        etree.SubElement(link, "document-date", {"iso-date": r.reached_on.isoformat()})
    indicator = etree.SubElement(element, "indicator", {"measure": codes.QUALITATIVE})
    indicator.append(_narrated("title", r.name))
    period = etree.SubElement(indicator, "period")
    etree.SubElement(period, "period-start", {"iso-date": r.reached_on.isoformat()})
    etree.SubElement(period, "period-end", {"iso-date": r.reached_on.isoformat()})
    return element


class ActivityWriter:
    """Writes `iati-activities` to a file, one activity at a time."""

    def __init__(self, reporting: Organisation, currency: str, generated: datetime) -> None:
        self.reporting = reporting
        self.currency = currency
        self.generated = generated
        self.cut = generated.astimezone(UTC).date()
        self.written = Written()

    def write(self, out: Path, activities: Iterable[Activity]) -> Written:
        with etree.xmlfile(str(out), encoding="utf-8") as xf:
            xf.write_declaration()
            root = {"version": IATI_VERSION, "generated-datetime": iso_time(self.generated)}
            with xf.element("iati-activities", root):
                xf.write("\n")
                for activity in activities:
                    self._activity(xf, activity)
        return self.written

    def _activity(self, xf: Any, a: Activity) -> None:
        attrib = {"last-updated-datetime": iso_time(a.last_updated), XML_LANG: "en",
                  "default-currency": self.currency, "hierarchy": str(a.hierarchy)}  # fmt: skip

        def put(element: Any) -> None:
            xf.write(element)
            xf.write("\n")

        with xf.element("iati-activity", attrib):
            xf.write("\n")
            identifier = etree.Element("iati-identifier")
            identifier.text = text(a.identifier)
            put(identifier)
            put(_organisation("reporting-org", self.reporting))
            put(_narrated("title", a.title))
            put(_narrated("description", a.description, {"type": codes.GENERAL}))
            for org, role in a.participants:
                put(_organisation("participating-org", org, role=role))
            put(_empty("activity-status", code=a.status))
            for d in a.dates:
                element = _empty("activity-date", type=d.type, iso_date=d.on.isoformat())
                if d.note:
                    etree.SubElement(element, "narrative").text = text(d.note)
                put(element)
            if a.country:
                put(_empty("recipient-country", code=a.country, percentage="100"))
            for s in a.sectors:
                sector = _empty("sector", vocabulary=s.vocabulary, code=s.code, percentage="100")
                if s.narrative:
                    etree.SubElement(sector, "narrative").text = text(s.narrative)
                put(sector)
            put(_empty("default-flow-type", code=codes.PRIVATE_DEVELOPMENT_FINANCE))
            put(_empty("default-finance-type", code=codes.STANDARD_GRANT))
            for budget in a.budgets:
                put(_budget(budget, self.currency, self.cut))
            for t in a.transactions:
                put(_transaction(t, self.currency))
                self.written.add(a.identifier, t.code, t.amount)
            for ref, kind in a.related:
                put(_empty("related-activity", ref=ref, type=kind))
            for r in a.results:
                put(_result(r))
        xf.write("\n")
        self.written.activities += 1
