"""A consumer's ledger keeps its allocations in its own store, not in memory.

`project --from-nats` admits every fact through the ledger's rules, and the rules look
allocations up. The consumer keeps them in `hl_stream_allocations`, as of the position
its ledger was last kept, and holds in memory only those changed since: its memory and
the cost of keeping its ledger do not grow with the number of allocations ever made.
Run on SQLite and PostgreSQL consumer stores, fed deliveries built from a real store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.consumer import Delivery
from homeledger.adapters.envelope import envelope_from_body
from homeledger.adapters.ledger_snapshot import ledger_to_dict
from homeledger.adapters.settings import store_location
from homeledger.adapters.store import allocation_of_row
from homeledger.domain.ledger import Allocation, Ledger
from homeledger.projections.consumer_store import ALLOCATIONS, LEDGER
from homeledger.projections.db import ProjectionDB
from homeledger.projections.stream_projector import StreamIntegrityError, StreamProjector
from tests.forger import next_fact

STREAM = "HOMELEDGER"
EVERY = 5  # the ledger is kept every 5 positions: most allocations live only in the table


@pytest.fixture
def recorded(reference_case_ledger: LedgerApplication) -> LedgerApplication:
    return reference_case_ledger


@pytest.fixture
def consumer(store_url: str, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[ProjectionDB]:  # fmt: skip
    """A consumer store of the same kind as the ledger's."""
    if store_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'consumer.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))  # another fresh database
    db = ProjectionDB(store_location(url))
    yield db
    db.close()


def deliveries(app: LedgerApplication) -> list[Delivery]:
    return [Delivery(e, "homeledger.events", e.position, 1, e.to_dict())
            for e in app.store.envelopes()]  # fmt: skip


def delivery(payload: dict[str, Any]) -> Delivery:
    envelope = envelope_from_body(payload, payload["position"])
    return Delivery(envelope, "homeledger.events", payload["position"], 1, payload)


def replayed(facts: list[Delivery]) -> Ledger:
    """The ledger of these facts, replayed in memory (every allocation in `changed`)."""
    ledger = Ledger()
    for d in facts:
        ledger.apply(d.envelope.fact, d.envelope.stamp())
    return ledger


def allocations_of(db: ProjectionDB, projector: StreamProjector) -> dict[str, Allocation]:
    """Every allocation the consumer's ledger knows: the table's, then those in memory."""
    with db.read() as tx:
        rows = tx.query(f"SELECT * FROM {ALLOCATIONS.name}")
    kept = {row[0]: allocation_of_row(row) for row in rows}
    return {**kept, **projector.ledger.allocations.changed}


def test_allocations_are_kept_in_the_table_and_a_reopened_consumer_has_the_same_ledger(
    recorded: LedgerApplication, consumer: ProjectionDB
) -> None:
    facts = deliveries(recorded)
    made = sum(1 for d in facts if d.envelope.type == "FundsAllocated")
    assert made > 3 * EVERY  # enough allocations to leave most of them in the table
    projector = StreamProjector(consumer, STREAM, snapshot_every=EVERY)
    projector.open()
    largest = 0
    for start in range(0, len(facts), 3):
        projector.apply_batch(facts[start : start + 3])
        applied = facts[: start + 3]
        largest = max(largest, len(projector.ledger.allocations.changed))
        expected = replayed(applied)
        assert allocations_of(consumer, projector) == expected.allocations.changed
        assert ledger_to_dict(projector.ledger) == ledger_to_dict(expected)
        # A consumer started now (the ledger kept, the facts after it replayed) agrees.
        reopened = StreamProjector(consumer, STREAM, snapshot_every=EVERY)
        reopened.open()
        assert ledger_to_dict(reopened.ledger) == ledger_to_dict(expected)
        assert allocations_of(consumer, reopened) == expected.allocations.changed
    # In memory: never more than the allocations of the facts since the last keeping.
    assert largest <= EVERY + 2 < made


def forged_after(facts: list[Delivery], kind: str, data: dict[str, Any]) -> Delivery:
    last = facts[-1].envelope.to_dict()
    return delivery(next_fact(last, type=kind, scope=data["initiative"], data=data))


def test_the_rules_find_allocations_that_are_only_in_the_table(
    recorded: LedgerApplication, consumer: ProjectionDB
) -> None:
    facts = deliveries(recorded)
    projector = StreamProjector(consumer, STREAM, snapshot_every=EVERY)
    projector.open()
    for start in range(0, len(facts), 7):
        projector.apply_batch(facts[start : start + 7])
    first = next(d.envelope for d in facts if d.envelope.type == "FundsAllocated")
    assert first.data["allocation_id"] not in projector.ledger.allocations.changed
    data = first.data
    again = {**data, "amount": "1.00"}  # its id used a second time
    over = {"allocation_id": data["allocation_id"], "initiative": data["initiative"],
            "year": data["year"], "amount": str(Decimal(data["amount"]) + 1),
            "currency": data["currency"], "reason": "more than was allocated"}  # fmt: skip
    refused = [("FundsAllocated", again, "allocation-unique"),
               ("AllocationReleased", over, "release-within-allocation")]
    for kind, forged, rule in refused:
        with pytest.raises(StreamIntegrityError, match=rule):
            projector.apply_batch([forged_after(facts, kind, forged)])
    # A release within the allocation, of an allocation found in the table, is admitted.
    fine = {**over, "amount": "1.00", "reason": "a part given back"}
    assert projector.apply_batch([forged_after(facts, "AllocationReleased", fine)]).applied == 1
    released = allocations_of(consumer, projector)[data["allocation_id"]]
    assert released.released == Decimal("1.00")


def test_a_ledger_kept_with_its_allocations_inline_is_read_and_moved_to_the_table(
    recorded: LedgerApplication, consumer: ProjectionDB
) -> None:
    """A consumer store written before the table existed kept every allocation in the
    ledger's JSON: it opens as before, and the next keeping moves them to the table."""
    facts = deliveries(recorded)
    half = len(facts) // 2
    projector = StreamProjector(consumer, STREAM, snapshot_every=10_000)  # never kept
    projector.open()
    projector.apply_batch(facts[:half])
    old = replayed(facts[:half])
    inline = {key: [a.initiative, a.year, str(a.amount), str(a.released)]
              for key, a in old.allocations.changed.items()}  # fmt: skip
    state = json.dumps({"ledger": ledger_to_dict(old), "allocations": inline})
    with consumer.write() as tx:
        tx.upsert(LEDGER, [(1, facts[half - 1].envelope.position, state)])
        assert tx.query(f"SELECT COUNT(*) FROM {ALLOCATIONS.name}") == [(0,)]
    reopened = StreamProjector(consumer, STREAM, snapshot_every=EVERY)
    reopened.open()
    assert ledger_to_dict(reopened.ledger) == ledger_to_dict(old)
    assert reopened.ledger.allocations.changed == old.allocations.changed
    reopened.apply_batch(facts[half:])
    expected = replayed(facts)
    assert allocations_of(consumer, reopened) == expected.allocations.changed
    with consumer.read() as tx:
        kept = tx.query(f"SELECT state FROM {LEDGER.name}")[0][0]
        count = tx.query(f"SELECT COUNT(*) FROM {ALLOCATIONS.name}")[0][0]
    assert '"allocations_in"' in kept and '"allocations":' not in kept
    assert count >= len(old.allocations.changed)
