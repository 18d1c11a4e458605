"""The consumer side: read models built from the NATS stream alone.

`StreamProjector` applies batches of stream messages to a consumer store
(`consumer_store`). Each batch is validated and written in one transaction: model
rows, model tracking positions, snapshots, the applied envelopes and the last applied
fact. A message is acknowledged only after that transaction committed, so a crash
repeats a batch at most, and repeating it changes nothing.

Validation refuses, instead of building wrong figures: a fact must continue the hash
chain (`hash_chain`: its body complete and covered by its hash, its version the next
one, its `prev_hash` the hash of the fact before it) at a higher position, and it must
keep every rule of the ledger (`Ledger.admit`, the code that decides commands, on the
consumer's own ledger, kept in its store): a correctly chained fact that no valid
command could have recorded (a forged over-disbursement, say) is refused with its
position and the rule it breaks. A fact at a position already applied must be that
very fact (same id and hash).

`project_stream` runs a projector on a durable consumer (`project --from-nats`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homeledger.adapters.consumer import (
    BatchStoppedError,
    ConsumerSpec,
    Delivery,
    UnreadableMessageError,
    consume,
)
from homeledger.adapters.hash_chain import body_of, link_problem
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import allocation_ids_named
from homeledger.domain.errors import DomainError
from homeledger.domain.ledger import Ledger
from homeledger.projections.consumer_store import (
    APPLIED,
    LAST_APPLIED,
    LastApplied,
    allocation_lookup,
    applied_facts,
    applied_page,
    create_tables,
    holds_events,
    kept_allocations,
    read_last_applied,
    read_ledger,
    save_ledger,
    write_ahead,
)
from homeledger.projections.db import ProjectionDB, Tx
from homeledger.projections.model import Model
from homeledger.projections.read_models import PROJECTIONS, new_model
from homeledger.projections.runner import load_model
from homeledger.projections.snapshots import DEFAULT_SNAPSHOT_EVERY, Snapshot, apply_page


class StreamIntegrityError(Exception):
    """The stream does not continue what this consumer applied: nothing more is applied.

    `handled` is how many messages of the batch before it were applied (and committed).
    """

    handled = 0


class NotAConsumerStoreError(Exception):
    """The database holds a ledger's events: a consumer needs a database of its own."""


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0


@dataclass
class StreamProjector:
    """Applies batches of stream messages to the consumer-side read models."""

    db: ProjectionDB
    stream: str
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    last: LastApplied = field(init=False)
    models: dict[str, Model] = field(init=False, default_factory=dict)
    ledger: Ledger = field(init=False, default_factory=Ledger)  # the rules' state
    _stale: bool = field(init=False, default=True)

    def open(self) -> LastApplied:
        """Create the tables if needed and load the models and the last applied fact."""
        if holds_events(self.db):  # before writing anything there
            raise NotAConsumerStoreError(
                f"{self.db.display} holds a ledger's events: give the consumer a database "
                "of its own (--store)"
            )
        self.db.ensure_schema()
        if self.db.kind == "sqlite":
            write_ahead(self.db)
        with self.db.write() as tx:
            create_tables(self.db, tx)
            self._rebuild_dropped(tx)
        with self.db.read() as tx:
            self._load(tx)
        return self.last

    def _rebuild_dropped(self, tx: Tx) -> None:
        """Rebuild the read models from the applied envelopes when they are all back at
        position 0 while facts were applied: `ensure_schema` dropped them because their
        format changed. One transaction: a crash leaves them dropped, to rebuild again."""
        last = read_last_applied(tx, self.stream).position
        if last == 0 or set(tx.tracking(PROJECTIONS).values()) != {0}:
            return
        models = {name: new_model(name) for name in PROJECTIONS}
        start = 1
        while page := applied_page(tx, start, last):
            for name, position, state in apply_page(models, page, self.snapshot_every):
                tx.save_snapshot(name, position, state)
            for model in models.values():
                tx.write_rows(type(model), model.take_rows())
            start = page[-1].position + 1
        for name, model in models.items():
            tx.set_tracking(name, model.position)

    def _load(self, tx: Tx) -> None:
        last = read_last_applied(tx, self.stream)
        if last.stream != self.stream:
            raise StreamIntegrityError(
                f"{self.db.display} was built from stream {last.stream}, not {self.stream}"
            )
        tracked = tx.tracking(PROJECTIONS)
        if set(tracked.values()) != {last.position}:
            raise StreamIntegrityError(
                f"{self.db.display}: the read models (positions {sorted(set(tracked.values()))}) "
                f"are not at the last applied fact (position {last.position}); "
                "drop the consumer store and build it again"
            )
        self.last = last
        self.models = {name: load_model(tx, name, last.position) for name in PROJECTIONS}
        self.ledger = read_ledger(tx, last.position)
        self._stale = False

    def apply_batch(self, deliveries: list[Delivery]) -> BatchResult:
        """Validate and apply in one transaction; raises after committing a valid prefix."""
        result = BatchResult()
        failure: StreamIntegrityError | None = None
        # The models in memory are those of the last batch committed, unless a batch
        # failed to commit since (then they hold its uncommitted changes).
        stale = self._stale
        self._stale, before = True, self.last
        with self.db.write() as tx:
            if self._moved(tx) or stale:  # _moved first: on PostgreSQL it locks the row
                self._load(tx)  # another process applied facts meanwhile, or a failure
                self._stale, before = True, self.last
            # The facts a reversal names: applied before this batch, or in it (kept in
            # memory with their positions until the batch is written).
            self.ledger.recorded = applied_facts(tx)
            # The kept allocations the batch's facts name, read in one query: found in
            # memory by the rules, each spared a query of its own.
            allocations = self.ledger.allocations
            allocations.lookup = allocation_lookup(tx)
            named = allocation_ids_named(d.envelope.data for d in deliveries)
            allocations.know(kept_allocations(tx, named))
            page = _Page()
            for index, delivery in enumerate(deliveries):
                try:
                    self._one(tx, delivery, page, result)
                except StreamIntegrityError as exc:
                    failure, exc.handled = exc, index
                    break
            self._write(tx, page, before)
        self._stale = False
        if failure is not None:
            raise failure
        return result

    def _moved(self, tx: Tx) -> bool:
        lock = " FOR UPDATE" if self.db.kind == "postgresql" else ""
        rows = tx.query(f"SELECT stream_seq, position FROM {LAST_APPLIED.name} WHERE id = 1{lock}")
        stored = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
        return stored != (self.last.stream_seq, self.last.position)

    def _one(self, tx: Tx, delivery: Delivery, page: _Page, result: BatchResult) -> None:
        envelope = delivery.envelope
        if envelope.position <= self.last.position:
            self._known(tx, delivery, page)
            result.duplicates += 1
            return
        check_continues(self.last, delivery)
        self._admit(delivery)
        page.snapshots += apply_page(self.models, [envelope], self.snapshot_every)
        # The message as received is kept: it decodes to this very envelope (it was built
        # from it), and its fact is covered by the hash just checked.
        text = delivery.data.decode() if delivery.data else envelope.to_json().decode()
        page.applied.append((envelope.position, envelope.event_id, envelope.hash,
                             delivery.stream_seq, text))  # fmt: skip
        last = self.last
        self.last = LastApplied(last.stream, delivery.stream_seq, envelope.position,
                                envelope.aggregate_version, envelope.event_id, envelope.hash,
                                last.events + 1)  # fmt: skip
        result.applied += 1

    def _admit(self, delivery: Delivery) -> None:
        """The fact must keep every rule, on the ledger this consumer applied so far."""
        envelope = delivery.envelope
        try:
            self.ledger.admit(envelope.fact)
        except DomainError as broken:
            raise StreamIntegrityError(
                f"stream sequence {delivery.stream_seq} (position {envelope.position}): "
                f"{envelope.type} breaks [{broken.rule}]: {broken.message}"
            ) from None
        self.ledger.apply(envelope.fact, envelope.stamp())

    def _known(self, tx: Tx, delivery: Delivery, page: _Page) -> None:
        """A redelivery is the event already applied at its position, or a refusal."""
        envelope = delivery.envelope
        found = [(p, i, h) for p, i, h, *_ in page.applied if p == envelope.position]
        if not found:
            found = [tuple(r) for r in tx.query(
                f"SELECT position, event_id, hash FROM {APPLIED.name} WHERE position = ?",
                (envelope.position,),
            )]  # fmt: skip
        if found and found[0][1] == envelope.event_id and found[0][2] == envelope.hash:
            return
        raise StreamIntegrityError(
            f"stream sequence {delivery.stream_seq}: event {envelope.event_id} at position "
            f"{envelope.position} is not the event applied at that position; the stream "
            "does not continue what this consumer built"
        )

    def _write(self, tx: Tx, page: _Page, before: LastApplied) -> None:
        if self.last == before:
            return
        for name, model in self.models.items():
            tx.write_rows(type(model), model.take_rows())
            tx.set_tracking(name, model.position)
        for name, position, rows in page.snapshots:
            tx.save_snapshot(name, position, rows)
        tx.insert(APPLIED, page.applied)
        tx.upsert(LAST_APPLIED, [self.last.row()])
        every = self.snapshot_every
        if self.last.position // every > before.position // every:
            save_ledger(tx, self.last.position, self.ledger)  # spares a long replay on open


@dataclass
class _Page:
    applied: list[tuple[Any, ...]] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)


def check_continues(last: LastApplied, delivery: Delivery) -> None:
    """Refuse a fact that does not continue the chain applied so far."""
    envelope = delivery.envelope
    where = f"stream sequence {delivery.stream_seq} (position {envelope.position})"
    if envelope.position <= last.position:
        raise StreamIntegrityError(
            f"{where}: positions must increase; the last applied is {last.position}"
        )
    problem = link_problem(body_of(delivery.payload), last.version + 1, last.hash)
    if problem is not None:
        raise StreamIntegrityError(f"{where}: {problem}")


# Running a projector on a durable consumer.


@dataclass
class ProjectStats:
    applied: int = 0
    duplicates: int = 0
    last: LastApplied | None = None


async def project_stream(
    settings: Settings, projector: StreamProjector, spec: ConsumerSpec, *, once: bool,
    stop: asyncio.Event | None = None, max_outage: float | None = None,
    report: Callable[[str], None] | None = None,
) -> ProjectStats:  # fmt: skip
    """Apply the stream to the consumer store: with `once` up to the stream's last
    message at the start, else until `stop`. Acknowledges each batch after its commit."""
    stats = ProjectStats(last=projector.open())

    def handle(deliveries: list[Delivery]) -> None:
        try:
            result = projector.apply_batch(deliveries)
        except StreamIntegrityError as exc:
            raise BatchStoppedError(exc.handled, exc) from None
        stats.applied += result.applied
        stats.duplicates += result.duplicates

    try:
        await consume(settings, spec, _unused, batch_handler=handle, once=once, stop=stop,
                      max_outage=max_outage, report=report, pull_ahead=True)  # fmt: skip
    except UnreadableMessageError as exc:
        raise StreamIntegrityError(str(exc)) from None
    stats.last = projector.last
    return stats


def _unused(delivery: Delivery) -> None:
    raise AssertionError("the projector handles whole batches")
