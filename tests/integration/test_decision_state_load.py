"""The decision state a process loads equals a replay of every fact through the rules.

The store keeps allocations in a table of their own, current at the head, and a
process loads its ledger from a snapshot (or from the state it had) and the facts
after it. Those facts are replayed, and checked against the rules, on the allocations
as they stood before them: a release recorded after the snapshot, or by another
writer since, is counted once, so the allocation's remainder is right.
"""

from __future__ import annotations

import base64
from datetime import date

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from homeledger.domain import commands as c
from homeledger.domain.ledger import replay
from tests.helpers import MakeApp

KEY = base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()
SETUP = [
    c.EstablishPartnership(donor="D", beneficiary="B", rate="100.00", currency="EUR",
                           basis="year-end", start=date(2021, 1, 1)),
    c.AcquireUnits(country="SE", units=100, on=date(2021, 1, 1)),
    c.PledgeDonation(year=2021),
    c.RegisterInitiative(id="x", name="X", country="SE", programme="p"),
    c.AllocateFunds(initiative="x", year=2021, amount="1000.00", allocation_id="A"),
    c.AllocateFunds(initiative="x", year=2021, amount="1.00", allocation_id="B"),
]  # fmt: skip


def test_a_release_after_the_snapshot_is_counted_once(store_url: str, make_app: MakeApp) -> None:
    writer = make_app(store_url, ledger_snapshot_every=3, seal_key=KEY)
    for command in SETUP:  # a snapshot at version 6
        writer.execute(command)
    writer.execute(c.ReleaseAllocation(id="A", amount="600.00", reason="r"))
    fresh = make_app(store_url, seal_key=KEY)
    state = fresh.refreshed_state()
    assert state.ledger.allocations["A"].released == 600
    fresh.execute(c.ReleaseAllocation(id="A", amount="400.00", reason="the rest"))
    facts = [e.fact for e in fresh.store.envelopes()]
    assert replay(facts).allocations["A"].remaining == 0


def test_another_writers_release_is_counted_once(store_url: str, make_app: MakeApp) -> None:
    first, second = make_app(store_url), make_app(store_url)
    for command in SETUP:
        first.execute(command)
    second.refreshed_state()  # cached, then another writer releases
    first.execute(c.ReleaseAllocation(id="A", amount="600.00", reason="r"))
    second.execute(c.ReleaseAllocation(id="A", amount="400.00", reason="the rest"))
    allocation = make_app(store_url).refreshed_state().ledger.allocations["A"]
    assert allocation.released == 1000


def test_an_import_after_another_writers_release_counts_it_once(
    store_url: str, make_app: MakeApp
) -> None:
    first, second = make_app(store_url), make_app(store_url)
    for command in SETUP[:-1]:
        first.execute(command)
    second.execute(SETUP[-1])  # its cache now looks allocations up in the table
    first.execute(c.ReleaseAllocation(id="A", amount="600.00", reason="r"))
    second.record_all([(1, c.ReleaseAllocation(id="A", amount="400.00", reason="the rest"))])
    assert make_app(store_url).refreshed_state().ledger.allocations["A"].released == 1000
