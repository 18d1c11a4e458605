"""Consumer-side projections: the read models built from the NATS stream alone.

A consumer keeps the same read models as the store (the `hl_proj_*` tables, written by
the same model code) in a database of its own, with no events table. Two tables of its
own say what it has applied:

    hl_stream_head    (id, stream, stream_seq, position, version, event_id, hash, events)
                      the last event applied: the chain continues from its hash
    hl_stream_events  (position, event_id, hash, stream_seq, envelope)
                      every applied event's envelope: for idempotence (a redelivered event
                      is recognised by its id and hash) and for point-in-time reads

Each batch of messages is validated and written in one transaction: model rows, model
tracking positions, checkpoints, the applied envelopes and the head. A message is
acknowledged only after that transaction committed, so a crash repeats a batch at most,
and repeating it changes nothing.

Validation refuses, instead of building wrong figures: an event must continue the hash
chain (its `prev_hash` is the hash of the event before it, its own hash covers its
content, its version is the next one) at a higher position; an event at a position
already applied must be that very event (same id and hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from homeledger.adapters.consumer import (
    BatchStoppedError,
    ConsumerSpec,
    Delivery,
    UnreadableMessageError,
    consume,
)
from homeledger.adapters.envelope import GENESIS_HASH, Envelope, chain_hash, envelope_from_body
from homeledger.adapters.settings import APP_NAME, Settings
from homeledger.projections.db import ProjectionDB, Tx
from homeledger.projections.model import Model, Rows, Table
from homeledger.projections.runner import DEFAULT_CHECKPOINT_EVERY, load_model
from homeledger.projections.state import PROJECTIONS, new_model

HEAD = Table(
    "hl_stream_head",
    (("id", "INT"), ("stream", "TEXT"), ("stream_seq", "INT"), ("position", "INT"),
     ("version", "INT"), ("event_id", "TEXT"), ("hash", "TEXT"), ("events", "INT")),
    ("id",),
)  # fmt: skip
APPLIED = Table(
    "hl_stream_events",
    (("position", "INT"), ("event_id", "TEXT"), ("hash", "TEXT"), ("stream_seq", "INT"),
     ("envelope", "TEXT")),
    ("position",),
    log=True,
)  # fmt: skip
# The eventsourcing library's events table: on SQLite, and on PostgreSQL.
EVENT_STORE_TABLES = ("stored_events", f"{APP_NAME}_events")


class StreamIntegrityError(Exception):
    """The stream does not continue what this consumer applied: nothing more is applied.

    `handled` is how many messages of the batch before it were applied (and committed).
    """

    handled = 0


class NotAConsumerStoreError(Exception):
    """The database holds a ledger's events: a consumer needs a database of its own."""


@dataclass
class StreamHead:
    """The last event applied (genesis before the first)."""

    stream: str
    stream_seq: int = 0
    position: int = 0
    version: int = 0
    event_id: str = ""
    hash: str = GENESIS_HASH
    events: int = 0

    def row(self) -> tuple[Any, ...]:
        return (1, self.stream, self.stream_seq, self.position, self.version, self.event_id,
                self.hash, self.events)  # fmt: skip


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0


def _table_names(tx: Tx, kind: str) -> set[str]:
    if kind == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = ("SELECT table_name FROM information_schema.tables "
               "WHERE table_schema = current_schema()")  # fmt: skip
    return {str(row[0]) for row in tx.query(sql)}


def is_consumer_db(db: ProjectionDB) -> bool:
    """Whether this database is a consumer-side store (built by `project --from-nats`)."""
    with db.read() as tx:
        tables = _table_names(tx, db.kind)
        return HEAD.name in tables and not _holds_events(tx, tables)


def holds_events(db: ProjectionDB) -> bool:
    """Whether this database holds a ledger's recorded events."""
    with db.read() as tx:
        return _holds_events(tx, _table_names(tx, db.kind))


def _holds_events(tx: Tx, tables: set[str]) -> bool:
    return any(tx.query(f"SELECT 1 FROM {name} LIMIT 1")
               for name in EVENT_STORE_TABLES if name in tables)  # fmt: skip


def _create(db: ProjectionDB, tx: Tx, table: Table) -> None:
    types = {"INT": "BIGINT", "TEXT": "TEXT"} if db.kind == "postgresql" else {}
    columns = ", ".join(f"{name} {types.get(kind, kind)}" for name, kind in table.columns)
    tx.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, "
               f"PRIMARY KEY ({', '.join(table.key)}))")  # fmt: skip


def _write_ahead(db: ProjectionDB) -> None:
    """An SQLite consumer store (a database of its own) keeps a write-ahead log and
    syncs it at every commit: a batch is acknowledged only once its commit is on disk,
    at the cost of one sync per batch instead of the rollback journal's several."""
    # If another process holds the database it keeps its journal (still synced).
    with contextlib.suppress(sqlite3.Error):
        db.conn.execute("PRAGMA journal_mode=WAL")
    db.conn.execute("PRAGMA synchronous=FULL")


class StreamLog:
    """The applied envelopes, read like the store's for point-in-time replays."""

    def __init__(self, db: ProjectionDB) -> None:
        self.db = db

    def envelopes(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        with self.db.read() as tx:
            rows = tx.query(
                f"SELECT position, envelope FROM {APPLIED.name} WHERE position >= ? "
                "AND position <= ? ORDER BY position",
                (start, stop if stop is not None else 2**62),
            )
        for position, text in rows:
            yield envelope_from_body(json.loads(text), int(position))

    def max_position(self) -> int:
        with self.db.read() as tx:
            rows = tx.query(f"SELECT position FROM {HEAD.name} WHERE id = 1")
        return int(rows[0][0]) if rows else 0


@dataclass
class StreamProjector:
    """Applies batches of stream messages to the consumer-side read models."""

    db: ProjectionDB
    stream: str
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    head: StreamHead = field(init=False)
    models: dict[str, Model] = field(init=False, default_factory=dict)
    _stale: bool = field(init=False, default=True)

    def open(self) -> StreamHead:
        """Create the tables if needed and load the models and the head."""
        if holds_events(self.db):  # before writing anything there
            raise NotAConsumerStoreError(
                f"{self.db.display} holds a ledger's events: give the consumer a database "
                "of its own (--store)"
            )
        self.db.ensure_schema()
        if self.db.kind == "sqlite":
            _write_ahead(self.db)
        with self.db.write() as tx:
            for table in (HEAD, APPLIED):
                _create(self.db, tx, table)
            self._rebuild_dropped(tx)
        with self.db.read() as tx:
            self._load(tx)
        return self.head

    def _rebuild_dropped(self, tx: Tx) -> None:
        """Rebuild the read models from the applied envelopes when they are all back at
        position 0 while events were applied: `ensure_schema` dropped them because their
        format changed. One transaction: a crash leaves them dropped, to rebuild again."""
        rows = tx.query(f"SELECT position FROM {HEAD.name} WHERE id = 1")
        head = int(rows[0][0]) if rows else 0
        if head == 0 or set(tx.tracking(PROJECTIONS).values()) != {0}:
            return
        models = {name: new_model(name) for name in PROJECTIONS}
        start = 1
        while page := tx.query(
            f"SELECT position, envelope FROM {APPLIED.name} WHERE position >= ? "
            "AND position <= ? ORDER BY position LIMIT 1000",
            (start, head),
        ):
            envelopes = [envelope_from_body(json.loads(text), int(at)) for at, text in page]
            checkpoints: list[tuple[str, int, Rows]] = []
            for name, model in models.items():
                bucket = model.position // self.checkpoint_every
                for envelope in envelopes:
                    model.apply(envelope)
                    if model.CHECKPOINTED and envelope.position // self.checkpoint_every > bucket:
                        bucket = envelope.position // self.checkpoint_every
                        checkpoints.append((name, envelope.position, model.state_rows()))
                tx.write_rows(type(model), model.take_rows())
            for name, position, state in checkpoints:
                tx.save_checkpoint(name, position, state)
            start = envelopes[-1].position + 1
        for name, model in models.items():
            tx.set_tracking(name, model.position)

    def _load(self, tx: Tx) -> None:
        rows = tx.query(f"SELECT * FROM {HEAD.name} WHERE id = 1")
        head = StreamHead(self.stream) if not rows else StreamHead(*rows[0][1:])
        if head.stream != self.stream:
            raise StreamIntegrityError(
                f"{self.db.display} was built from stream {head.stream}, not {self.stream}"
            )
        tracked = tx.tracking(PROJECTIONS)
        if set(tracked.values()) != {head.position}:
            raise StreamIntegrityError(
                f"{self.db.display}: the read models (positions {sorted(set(tracked.values()))}) "
                f"are not at the last applied event (position {head.position}); "
                "drop the consumer store and build it again"
            )
        self.head = head
        self.models = {name: load_model(tx, name, head.position) for name in PROJECTIONS}
        self._stale = False

    def apply_batch(self, deliveries: list[Delivery]) -> BatchResult:
        """Validate and apply in one transaction; raises after committing a valid prefix."""
        result = BatchResult()
        failure: StreamIntegrityError | None = None
        # The models in memory are those of the last batch committed, unless a batch
        # failed to commit since (then they hold its uncommitted changes).
        stale = self._stale
        self._stale, before = True, self.head
        with self.db.write() as tx:
            if self._moved(tx) or stale:  # _moved first: on PostgreSQL it locks the head
                self._load(tx)  # another process applied events meanwhile, or a failure
                self._stale, before = True, self.head
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
        rows = tx.query(f"SELECT stream_seq, position FROM {HEAD.name} WHERE id = 1{lock}")
        stored = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
        return stored != (self.head.stream_seq, self.head.position)

    def _one(self, tx: Tx, delivery: Delivery, page: _Page, result: BatchResult) -> None:
        envelope = delivery.envelope
        if envelope.position <= self.head.position:
            self._known(tx, delivery, page)
            result.duplicates += 1
            return
        check_continues(self.head, envelope, delivery.stream_seq)
        for name, model in self.models.items():
            bucket = model.position // self.checkpoint_every
            model.apply(envelope)
            if model.CHECKPOINTED and envelope.position // self.checkpoint_every > bucket:
                page.checkpoints.append((name, envelope.position, model.state_rows()))
        page.applied.append((envelope.position, envelope.event_id, envelope.hash,
                             delivery.stream_seq, envelope.to_json().decode()))  # fmt: skip
        head = self.head
        self.head = StreamHead(head.stream, delivery.stream_seq, envelope.position,
                               envelope.aggregate_version, envelope.event_id, envelope.hash,
                               head.events + 1)  # fmt: skip
        result.applied += 1

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

    def _write(self, tx: Tx, page: _Page, before: StreamHead) -> None:
        if self.head == before:
            return
        for name, model in self.models.items():
            tx.write_rows(type(model), model.take_rows())
            tx.set_tracking(name, model.position)
        for name, position, rows in page.checkpoints:
            tx.save_checkpoint(name, position, rows)
        tx.insert(APPLIED, page.applied)
        tx.upsert(HEAD, [self.head.row()])


@dataclass
class _Page:
    applied: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoints: list[tuple[str, int, Rows]] = field(default_factory=list)


def check_continues(head: StreamHead, envelope: Envelope, stream_seq: int) -> None:
    """Refuse an event that does not continue the chain applied so far."""
    where = f"stream sequence {stream_seq} (position {envelope.position})"
    if envelope.position <= head.position:
        raise StreamIntegrityError(
            f"{where}: positions must increase; the last applied is {head.position}"
        )
    if envelope.aggregate_version != head.version + 1:
        raise StreamIntegrityError(
            f"{where}: version {envelope.aggregate_version} where {head.version + 1} was "
            "expected (an event is missing or repeated)"
        )
    if envelope.prev_hash != head.hash:
        raise StreamIntegrityError(
            f"{where}: prev_hash does not match the hash of the event before it "
            f"(position {head.position}): the hash chain is broken"
        )
    if chain_hash(envelope.body()) != envelope.hash:
        raise StreamIntegrityError(f"{where}: the content does not match its hash")


# Running a projector on a durable consumer.


@dataclass
class ProjectStats:
    applied: int = 0
    duplicates: int = 0
    head: StreamHead | None = None


async def project_stream(
    settings: Settings, projector: StreamProjector, spec: ConsumerSpec, *, once: bool,
    stop: asyncio.Event | None = None, max_outage: float | None = None,
    report: Callable[[str], None] | None = None,
) -> ProjectStats:  # fmt: skip
    """Apply the stream to the consumer store: with `once` up to the stream's last
    message at the start, else until `stop`. Acknowledges each batch after its commit."""
    stats = ProjectStats(head=projector.open())

    def handle(deliveries: list[Delivery]) -> None:
        try:
            result = projector.apply_batch(deliveries)
        except StreamIntegrityError as exc:
            raise BatchStoppedError(exc.handled, exc) from None
        stats.applied += result.applied
        stats.duplicates += result.duplicates

    try:
        await consume(settings, spec, _unused, batch_handler=handle, once=once, stop=stop,
                      max_outage=max_outage, report=report)  # fmt: skip
    except UnreadableMessageError as exc:
        raise StreamIntegrityError(str(exc)) from None
    stats.head = projector.head
    return stats


def _unused(delivery: Delivery) -> None:
    raise AssertionError("the projector handles whole batches")
