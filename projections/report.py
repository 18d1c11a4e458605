"""The year report: what a year's pledge became, as of any position.

Pledged, received and outstanding for the year; the year's money allocated per
initiative (allocated, released, net); what was disbursed during the calendar year
(by the disbursement date) per initiative; and the milestones reached in the year.
Reversed disbursements and milestones are left out. With `to`, only the facts
effective on or before that date count (and the year ends there, if earlier).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from homeledger.domain.money import ZERO, fmt
from homeledger.projections.as_of import PointInTime

REPORT_COLUMNS = ("section", "item", "country", "detail", "amount")


def year_report(reader: PointInTime, year: int, position: int,
                to: date | None = None) -> dict[str, Any]:  # fmt: skip
    balances = reader.balances(position, to)
    first, last = date(year, 1, 1), min(date(year, 12, 31), to or date.max)
    totals = balances.years.get(year)
    pledge = balances.year_rows(year)[0] if totals else None
    allocations = [
        {**row, "net": fmt(Decimal(row["allocated"]) - Decimal(row["released"]))}
        for row in balances.rows("initiative", year)
    ]
    paid: dict[str, Decimal] = {}
    for row in reader.audit_rows_of_types(("FundsDisbursed",), first, last, position):
        paid[row["initiative"]] = paid.get(row["initiative"], ZERO) + Decimal(row["amount"])
    milestones = reader.audit_rows_of_types(("MilestoneReached",), first, last, position)
    return {
        "year": year,
        "as_of_position": position,
        **({} if to is None else {"to": to.isoformat()}),
        "basis": totals.basis if totals else None,
        "unit_basis": totals.unit_basis if totals else None,
        "pledge": pledge,
        "allocations": allocations,
        "disbursements": [
            {
                "initiative": key,
                "country": _country(balances.initiatives, key),
                "disbursed": fmt(amount),
            }
            for key, amount in sorted(paid.items())
        ],
        "disbursed": fmt(sum(paid.values(), ZERO)),
        "milestones": [
            {
                "initiative": m["initiative"],
                "milestone": m["detail"],
                "reached_on": m["effective_date"],
                "position": m["position"],
            }
            for m in milestones
        ],
    }


def _country(initiatives: dict[str, Any], key: str) -> str:
    info = initiatives.get(key)
    return str(info.country) if info else ""


def report_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report flattened to lines, for a table or a CSV file."""
    lines: list[dict[str, Any]] = []
    pledge = report["pledge"] or {}
    basis = f"basis {report['basis']}, unit basis {report['unit_basis']}" if pledge else ""
    for item in ("pledged", "received", "outstanding", "allocated", "released", "unallocated"):
        lines.append({"section": "pledge", "item": item, "detail": basis if item == "pledged"
                      else "", "amount": pledge.get(item, fmt(ZERO))})  # fmt: skip
    for row in report["allocations"]:
        detail = f"allocated {row['allocated']}, released {row['released']}"
        lines.append({"section": "allocation", "item": row["initiative"],
                      "country": row["country"], "amount": row["net"],
                      "detail": detail})  # fmt: skip
    for row in report["disbursements"]:
        lines.append({"section": "disbursement", "item": row["initiative"],
                      "country": row["country"], "amount": row["disbursed"]})  # fmt: skip
    lines.append({"section": "disbursed", "item": "total", "amount": report["disbursed"]})
    for row in report["milestones"]:
        lines.append({"section": "milestone", "item": row["initiative"],
                      "detail": f"{row['reached_on']}: {row['milestone']}"})  # fmt: skip
    return lines
