"""Snapshots of the ledger's decision state: a cache that spares replaying every fact.

A snapshot is never a source of truth: it carries the version and chain hash it was
taken at, and a format number; one of an unknown format is ignored and the state is
rebuilt from the facts. The store trusts a snapshot only if

- a key the database does not hold authenticates it: `mac` is an HMAC-SHA256, under a
  key derived from the cipher key or the seal key, of its version, chain hash and
  ledger (so a forger who can write the database cannot write a snapshot the ledger
  accepts: a pledge of 999,000,000.00 in a forged row is simply not read), and
- the fact at its version is stored with that very hash (so a genuine snapshot is not
  replayed onto another history).

Why not less: a plain digest of the snapshot, or its binding to the chain hash, is
recomputed by the forger as easily as the chain itself. Why not more: replaying every
fact to check a snapshot is what a snapshot is there to spare. `verify` compares every
stored snapshot with its own replay anyway, key or not.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from decimal import Decimal
from typing import Any

from homeledger.adapters.hash_chain import canonical_json
from homeledger.domain.ledger import Allocations, Initiative, Ledger, RecordedFacts, YearBook
from homeledger.domain.pledge import Terms
from homeledger.domain.portfolio import Portfolio

# 2: no per-year unit basis, no ledger-wide disbursed total (never read).
# 3: no allocations: the store keeps them in a table of their own.
# 4: the event ids of the facts reversed.
SNAPSHOT_FORMAT = 4


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
        "reversed": sorted(ledger.reversed),
    }


def ledger_from_dict(data: dict[str, Any], allocations: Allocations,
                     recorded: RecordedFacts | None = None) -> Ledger | None:  # fmt: skip
    """The ledger of a snapshot, its allocations found in `allocations` and the facts a
    reversal names in `recorded`."""
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
        recorded=recorded or RecordedFacts(),
        reversed=frozenset(data["reversed"]),
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


_MAC_FIELDS = ("version", "hash", "ledger")


def snapshot_mac(key: bytes, body: dict[str, Any]) -> str:
    """The HMAC-SHA256 of a snapshot's version, chain hash and ledger."""
    signed = canonical_json({name: body[name] for name in _MAC_FIELDS})
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def snapshot_body(key: bytes, version: int, last_hash: str,
                  ledger: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """A snapshot as stored: what it holds and its MAC."""
    body: dict[str, Any] = {"version": version, "hash": last_hash, "ledger": ledger}
    body["mac"] = snapshot_mac(key, body)
    return body


def authentic(key: bytes, body: Any) -> bool:
    """Whether `body` is a snapshot this key authenticated."""
    if not isinstance(body, dict) or not all(name in body for name in _MAC_FIELDS):
        return False
    return hmac.compare_digest(str(body.get("mac", "")), snapshot_mac(key, body))


def snapshot_key(secret: bytes) -> bytes:
    """The key that authenticates snapshots, derived from a secret outside the database
    (never the secret itself: it has a job of its own)."""
    return hmac.new(b"homeledger ledger snapshot key v1", secret, hashlib.sha256).digest()
