"""The consumer-side store: a database of its own that `project --from-nats` fills.

It keeps the same read models as the ledger's store (the `hl_proj_*` tables, written
by the same model code), with no events table. Two tables of its own say what it has
applied:

    hl_stream_head    (id, stream, stream_seq, position, version, event_id, hash, events)
                      the last fact applied: the chain continues from its hash
    hl_stream_events  (position, event_id, hash, stream_seq, envelope)
                      every applied fact's envelope: for idempotence (a redelivered fact
                      is recognised by its id and hash) and for point-in-time reads
    hl_stream_ledger  (id, position, state)
                      the ledger (the domain's rules' state) as of a recent position: the
                      consumer admits every fact through the same rules as the store
    hl_stream_allocations (allocation_id, initiative, year, amount, released)
                      the ledger's allocations as of that same position (amounts in
                      cents): the consumer keeps in memory only those changed since, and
                      finds the others here, so that neither its memory nor the cost of
                      keeping its ledger grows with the partnership's age
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from homeledger.adapters.envelope import Envelope, decode_json, envelope_from_body
from homeledger.adapters.hash_chain import GENESIS_HASH
from homeledger.adapters.ledger_snapshot import ledger_from_dict, ledger_to_dict
from homeledger.adapters.store import EVENT_TABLES, allocation_row, allocations_by_id
from homeledger.domain.ledger import (
    Allocation,
    Allocations,
    Ledger,
    RecordedFact,
    RecordedFacts,
    recorded_fact,
)
from homeledger.projections.db import ProjectionDB, Tx
from homeledger.projections.model import Table

PAGE = 1000
LAST_APPLIED = Table(
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


LEDGER = Table(
    "hl_stream_ledger", (("id", "INT"), ("position", "INT"), ("state", "TEXT")), ("id",)
)
ALLOCATIONS = Table(
    "hl_stream_allocations",
    (("allocation_id", "TEXT"), ("initiative", "TEXT"), ("year", "INT"), ("amount", "INT"),
     ("released", "INT")),
    ("allocation_id",),
)  # fmt: skip
# The kept ledger's allocations are in ALLOCATIONS (a kept ledger written before that
# table existed holds them inline, under "allocations"; it is read as it was).
IN_TABLE = {"allocations_in": ALLOCATIONS.name}


@dataclass
class LastApplied:
    """The last fact a consumer applied (the genesis before the first)."""

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
        return LAST_APPLIED.name in tables and not _holds_events(tx, tables)


def holds_events(db: ProjectionDB) -> bool:
    """Whether this database holds a ledger's recorded events."""
    with db.read() as tx:
        return _holds_events(tx, _table_names(tx, db.kind))


def _holds_events(tx: Tx, tables: set[str]) -> bool:
    return any(tx.query(f"SELECT 1 FROM {name} LIMIT 1")
               for name in EVENT_TABLES if name in tables)  # fmt: skip


def create_tables(db: ProjectionDB, tx: Tx) -> None:
    types = {"INT": "BIGINT", "TEXT": "TEXT"} if db.kind == "postgresql" else {}
    for table in (LAST_APPLIED, APPLIED, LEDGER, ALLOCATIONS):
        columns = ", ".join(f"{name} {types.get(kind, kind)}" for name, kind in table.columns)
        tx.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, "
                   f"PRIMARY KEY ({', '.join(table.key)}))")  # fmt: skip


def write_ahead(db: ProjectionDB) -> None:
    """An SQLite consumer store (a database of its own) keeps a write-ahead log and
    syncs it at every commit: a batch is acknowledged only once its commit is on disk,
    at the cost of one sync per batch instead of the rollback journal's several."""
    # If another process holds the database it keeps its journal (still synced).
    with contextlib.suppress(sqlite3.Error):
        db.conn.execute("PRAGMA journal_mode=WAL")
    db.conn.execute("PRAGMA synchronous=FULL")


def read_last_applied(tx: Tx, stream: str) -> LastApplied:
    rows = tx.query(f"SELECT * FROM {LAST_APPLIED.name} WHERE id = 1")
    return LastApplied(stream) if not rows else LastApplied(*rows[0][1:])


def save_ledger(tx: Tx, position: int, ledger: Ledger) -> None:
    """Keep the consumer's ledger as of `position` (in the transaction of that position):
    its state, and the allocations changed since it was last kept; from then on the
    ledger holds none of them in memory (they are found in the table)."""
    tx.upsert(ALLOCATIONS, [allocation_row(a) for a in ledger.allocations.changed.values()])
    state = {"ledger": ledger_to_dict(ledger), **IN_TABLE}
    tx.upsert(LEDGER, [(1, position, _state_text(state))])
    ledger.allocations = ledger.allocations.kept()


def allocation_lookup(tx: Tx) -> Callable[[str], Allocation | None]:
    """Find a kept allocation by id, in `tx` (valid while it is open)."""
    return lambda allocation_id: kept_allocations(tx, [allocation_id])[allocation_id]


def kept_allocations(tx: Tx, allocation_ids: list[str]) -> dict[str, Allocation | None]:
    """The kept allocations of these ids (None for an id with none), read in bulk."""
    return allocations_by_id(tx.query, ALLOCATIONS.name, allocation_ids)


def _state_text(state: dict[str, Any]) -> str:
    """The kept state as JSON text (read back by `json.loads`): through orjson, which is
    several times faster on a ledger of many allocations, unless it refuses the value."""
    try:
        return orjson.dumps(state).decode()
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer beyond 64 bits
        return json.dumps(state)


def read_ledger(tx: Tx, position: int) -> Ledger:
    """The consumer's ledger as of `position`: the kept one, and the applied facts after
    it (every one was admitted when it was applied)."""
    rows = tx.query(f"SELECT position, state FROM {LEDGER.name} WHERE id = 1")
    lookup = allocation_lookup(tx)
    kept = _kept_ledger(rows[0][1], lookup) if rows and rows[0][0] <= position else None
    # None kept, or of another format: replayed from the first fact, every allocation in
    # memory (the table may hold older copies of some: the next keeping replaces them).
    start, ledger = (int(rows[0][0]) + 1, kept) if kept is not None else (1, Ledger())
    while page := applied_page(tx, start, position):
        ledger.apply_all(envelope.fact for envelope in page)
        start = page[-1].position + 1
    return ledger


def _kept_ledger(text: str, lookup: Callable[[str], Allocation | None]) -> Ledger | None:
    """The kept ledger, or None if it is of another format (then it is replayed)."""
    state = decode_json(text)
    if not isinstance(state, dict):
        return None
    if state.get("allocations_in") == ALLOCATIONS.name:
        return ledger_from_dict(state["ledger"], Allocations(lookup))
    if "allocations" not in state:
        return None
    # Kept before the table existed: every allocation inline, all moved to the table
    # the next time the ledger is kept.
    changed = {key: Allocation(key, initiative, int(year), Decimal(amount), Decimal(released))
               for key, (initiative, year, amount, released)
               in state["allocations"].items()}  # fmt: skip
    return ledger_from_dict(state["ledger"], Allocations(lookup, changed))


def applied_facts(tx: Tx) -> RecordedFacts:
    """The facts a reversal may name, found by position among the envelopes applied
    (read in `tx`: valid while it is open)."""

    def lookup(position: int) -> RecordedFact | None:
        rows = tx.query(f"SELECT envelope FROM {APPLIED.name} WHERE position = ?", (position,))
        if not rows:
            return None
        envelope = envelope_from_body(decode_json(rows[0][0]), position)
        return recorded_fact(envelope.fact, envelope.event_id)

    return RecordedFacts(lookup)


def applied_page(tx: Tx, start: int, stop: int) -> list[Envelope]:
    """Up to PAGE applied envelopes from `start` to `stop`, in order."""
    rows = tx.query(
        f"SELECT position, envelope FROM {APPLIED.name} WHERE position >= ? "
        f"AND position <= ? ORDER BY position LIMIT {PAGE}",
        (start, stop),
    )
    return [envelope_from_body(decode_json(text), int(position)) for position, text in rows]


class AppliedLog:
    """A consumer store's applied envelopes, read like the store's facts (an
    EventSource), so that its read models answer as of any past position."""

    def __init__(self, db: ProjectionDB) -> None:
        self.db = db

    def envelopes(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        last = stop if stop is not None else 2**62
        while True:
            with self.db.read() as tx:  # one page per transaction: none held across yields
                page = applied_page(tx, start, last)
            yield from page
            if len(page) < PAGE:
                return
            start = page[-1].position + 1

    def max_position(self) -> int:
        with self.db.read() as tx:
            rows = tx.query(f"SELECT position FROM {LAST_APPLIED.name} WHERE id = 1")
        return int(rows[0][0]) if rows else 0
