"""Snapshots of the ledger's decision state: a cache that spares replaying every fact.

A snapshot is never a source of truth: it carries the version and chain hash it was
taken at, and a format number; one of an unknown format is ignored and the state is
rebuilt from the facts. (The store trusts a snapshot only if the fact at its version
is stored with that very hash.)
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from homeledger.domain.ledger import Allocations, Initiative, Ledger, YearBook
from homeledger.domain.pledge import Terms
from homeledger.domain.portfolio import Portfolio

# 2: no per-year unit basis, no ledger-wide disbursed total (never read).
# 3: no allocations: the store keeps them in a table of their own.
SNAPSHOT_FORMAT = 3


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def ledger_to_dict(ledger: Ledger) -> dict[str, Any]:
    p = ledger.partnership
    return {
        "format": SNAPSHOT_FORMAT,
        "partnership": None
        if p is None
        else [p.donor, p.beneficiary, str(p.rate), p.currency, p.basis, p.start_date.isoformat()],
        "portfolio": {
            country: [[on.isoformat(), delta] for on, delta in entries]
            for country, entries in ledger.portfolio.changes.items()
        },
        "years": {
            str(year): [str(b.pledged), str(b.received), str(b.allocated), str(b.released)]
            for year, b in ledger.years.items()
        },
        "initiatives": {
            key: [i.name, i.country, i.programme, _d(i.closed_on), str(i.allocated),
                  str(i.released), str(i.disbursed), sorted(i.milestones)]
            for key, i in ledger.initiatives.items()
        },
        "last_seal_position": ledger.last_seal_position,
    }


def ledger_from_dict(data: dict[str, Any], allocations: Allocations) -> Ledger | None:
    """The ledger of a snapshot, its allocations found in `allocations`."""
    if data.get("format") != SNAPSHOT_FORMAT:
        return None
    p = data["partnership"]
    ledger = Ledger(
        partnership=None
        if p is None
        else Terms(p[0], p[1], Decimal(p[2]), p[3], p[4], date.fromisoformat(p[5])),
        portfolio=Portfolio(
            {
                country: [(date.fromisoformat(on), delta) for on, delta in entries]
                for country, entries in data["portfolio"].items()
            }
        ),
        allocations=allocations,
        last_seal_position=data["last_seal_position"],
    )
    for year, (pledged, received, allocated, released) in data["years"].items():
        ledger.years[int(year)] = YearBook(
            Decimal(pledged), Decimal(received), Decimal(allocated), Decimal(released)
        )
    for key, fields in data["initiatives"].items():
        name, country, programme, closed, alloc, rel, disb, milestones = fields
        ledger.initiatives[key] = Initiative(
            key, name, country, programme,
            date.fromisoformat(closed) if closed else None,
            Decimal(alloc), Decimal(rel), Decimal(disb), frozenset(milestones),
        )  # fmt: skip
    return ledger
