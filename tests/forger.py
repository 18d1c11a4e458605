"""The forger's tools: what someone with write access to the database or to the NATS
stream can do behind the ledger's back. Every test of an attack uses these, so that
each attack is written once and reads as what it does.

The store's tables are edited directly (SQLite through sqlite3, PostgreSQL through
psycopg), as a careful forger would: facts re-chained (each hash recomputed over the
edited body), seals recomputed (signed too, when the forger holds a key), snapshots
written as the store writes them, receipts deleted, rows moved to another aggregate.
On the stream, messages are published with any payload and headers.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import nats

from homeledger.adapters.hash_chain import GENESIS_HASH, canonical_json, chain_hash
from homeledger.adapters.seals import seal_digest
from homeledger.domain.events import event_from_data

SQLITE_TABLES = {"events": "stored_events", "snapshots": "stored_snapshots"}
POSTGRES_TABLES = {"events": "homeledger_events", "snapshots": "homeledger_snapshots"}


class RawEvents:
    """The store's tables, edited directly. In the SQL given to `run`, `ID` stands for the
    position column and `stored_events` / `stored_snapshots` for the backend's tables
    (SQLite: rowid of stored_events; PostgreSQL: notification_id of homeledger_events)."""

    def __init__(self, url: str | Path) -> None:
        url = f"sqlite:///{url}" if isinstance(url, Path) else url
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.id, self.tables = "rowid", SQLITE_TABLES
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.id, self.tables = "notification_id", POSTGRES_TABLES
        self.table = self.tables["events"]

    @property
    def db(self) -> Any:
        """The raw DB-API connection."""
        return self.conn

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        sql = (sql.replace("ID", self.id)
               .replace("stored_events", self.tables["events"])
               .replace("stored_snapshots", self.tables["snapshots"]))  # fmt: skip
        cursor = self.conn.execute(sql if self.sqlite else sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []

    def close(self) -> None:
        self.conn.close()

    # Facts.

    def positions(self) -> list[int]:
        return [int(r[0]) for r in self.run("SELECT ID FROM stored_events ORDER BY ID")]

    def head(self) -> int:
        return int(self.run("SELECT MAX(ID) FROM stored_events")[0][0] or 0)

    def row(self, position: int) -> tuple[Any, int, str, bytes]:
        """(originator id, originator version, topic, state) at a position."""
        found = self.run("SELECT originator_id, originator_version, topic, state "
                         "FROM stored_events WHERE ID = ?", (position,))  # fmt: skip
        originator, version, topic, state = found[0]
        return originator, int(version), str(topic), bytes(state)

    def body(self, position: int) -> dict[str, Any]:
        return dict(json.loads(self.row(position)[3]))

    def set_body(self, position: int, body: dict[str, Any]) -> None:
        self.set_state(position, canonical_json(body))

    def set_state(self, position: int, state: bytes) -> None:
        self.run("UPDATE stored_events SET state = ? WHERE ID = ?", (state, position))

    def set_topic(self, position: int, topic: str) -> None:
        self.run("UPDATE stored_events SET topic = ? WHERE ID = ?", (topic, position))

    def set_version(self, position: int, version: int) -> None:
        self.run("UPDATE stored_events SET originator_version = ? WHERE ID = ?",
                 (version, position))  # fmt: skip

    def move(self, old: int, new: int) -> None:
        self.run("UPDATE stored_events SET ID = ? WHERE ID = ?", (new, old))

    def delete(self, position: int) -> None:
        self.run("DELETE FROM stored_events WHERE ID = ?", (position,))

    def swap_contents(self, i: int, j: int) -> None:
        (_, _, topic_i, state_i), (_, _, topic_j, state_j) = self.row(i), self.row(j)
        for position, topic, state in ((i, topic_j, state_j), (j, topic_i, state_i)):
            self.run("UPDATE stored_events SET topic = ?, state = ? WHERE ID = ?",
                     (topic, state, position))  # fmt: skip

    def swap_positions(self, i: int, j: int) -> None:
        self.run("UPDATE stored_events SET ID = -1 WHERE ID = ?", (i,))
        self.run("UPDATE stored_events SET ID = ? WHERE ID = ?", (i, j))
        self.run("UPDATE stored_events SET ID = ? WHERE ID = -1", (j,))

    def insert(self, position: int, originator: Any, version: int, topic: str,
               body: dict[str, Any]) -> None:  # fmt: skip
        """Slip an event in at `position`, every later one moved up by one."""
        self.run("UPDATE stored_events SET ID = -(ID + 1) WHERE ID >= ?", (position,))
        self.run("UPDATE stored_events SET ID = -ID WHERE ID < 0")
        self.put(position, body, originator=originator, version=version, topic=topic)

    def put(self, position: int, body: dict[str, Any], *, originator: Any = None,
            version: int | None = None, topic: str | None = None) -> None:  # fmt: skip
        """A row at a free `position` holding `body` (by default of the ledger's aggregate,
        at the body's version, under its type's topic)."""
        if originator is None:
            originator = self.row(self.positions()[0])[0]
        self.run("INSERT INTO stored_events (ID, originator_id, originator_version, topic, "
                 "state) VALUES (?, ?, ?, ?, ?)",
                 (position, originator, version or body["aggregate_version"],
                  topic or f"homeledger:{body['type']}", canonical_json(body)))  # fmt: skip

    def other_aggregate(self) -> Any:
        """An aggregate id that is not the ledger's, in the backend's column form."""
        return "0" * 32 if self.sqlite else uuid.UUID(int=0)

    def set_originator(self, position: int, originator: Any) -> None:
        self.run("UPDATE stored_events SET originator_id = ? WHERE ID = ?",
                 (originator, position))  # fmt: skip

    def rechain_from(self, start: int, edited: dict[str, Any] | None = None) -> None:
        """Store `edited` at `start` (if given) and re-hash every fact from there on, as a
        careful forger would: the chain is consistent again."""
        earlier = [p for p in self.positions() if p < start]
        prev = self.body(earlier[-1])["hash"] if earlier else GENESIS_HASH
        for position in [p for p in self.positions() if p >= start]:
            body = edited if (position == start and edited is not None) else self.body(position)
            body["prev_hash"] = prev
            body["hash"] = prev = chain_hash(body)
            self.set_body(position, body)

    def edit(self, position: int, change: dict[str, Any], *, data: bool = True,
             rehash: bool = True) -> dict[str, Any]:  # fmt: skip
        """Change fields of the fact at `position` (of its `data`, or of the body itself)
        and, with `rehash`, recompute its own hash (not the chain after it)."""
        body = self.body(position)
        (body["data"] if data else body).update(change)
        if rehash:
            body["hash"] = chain_hash(body)
        self.set_body(position, body)
        return body

    def append(self, event_type: str, data: dict[str, Any], **fields: Any) -> int:
        """A new fact at the tail, correctly chained after the last one (its metadata
        copied from it): the position it took."""
        last = self.head()
        before = self.body(last)
        body = {**before, "event_id": str(uuid.uuid4()), "type": event_type,
                "schema_version": 1, "aggregate_version": before["aggregate_version"] + 1,
                "command_id": str(uuid.uuid4()), "data": data, "prev_hash": before["hash"],
                **fields}  # fmt: skip
        body["correlation_id"] = fields.get("correlation_id", body["command_id"])
        if "effective_date" not in fields:  # a careful forger dates it as the fact says
            body["effective_date"] = _own_date(event_type, data, before["effective_date"])
        body["hash"] = chain_hash(body)
        self.put(last + 1, body)
        return last + 1

    def reseal(self, position: int, signer: Any = None) -> None:
        """Recompute the seal at `position` over the (forged) chain before it, and sign
        it when the forger holds a key (`signer`: an Ed25519 private key); without one,
        the signature is removed (the seal then looks like an unsigned one)."""
        body = self.body(position)
        covered = body["data"]["position"]
        bodies = [self.body(p) for p in self.positions() if p <= covered]
        last_hash = bodies[-1]["hash"] if bodies else GENESIS_HASH
        body["data"]["digest"] = seal_digest(covered, len(bodies), last_hash)
        if "signature" in body["data"]:  # without a key, the forger makes it look unsigned
            body["data"].update(signature="", key_id="")
        if signer is not None:
            from homeledger.adapters.seals import sign

            body["data"].update(sign(signer, body["data"]["digest"]))
        self.set_body(position, body)

    def truncate(self, cut: int) -> None:
        """Remove the newest facts, from position `cut` on, as a careful forger would:
        their commands' receipts go too (or are cut back to the facts that stay)."""
        kept = [p for p in self.positions() if p < cut]
        version = self.body(kept[-1])["aggregate_version"] if kept else 0
        self.run("DELETE FROM stored_events WHERE ID >= ?", (cut,))
        self.run("DELETE FROM homeledger_commands WHERE first_version > ?", (version,))
        self.run("UPDATE homeledger_commands SET last_version = ? WHERE last_version > ?",
                 (version, version))  # fmt: skip

    # Receipts and snapshots.

    def set_allocation(self, allocation_id: str, **columns: int) -> None:
        """Edit a row of the allocation table the ledger looks allocations up in (amounts
        in cents: amount, released)."""
        for column, value in columns.items():
            self.run(f"UPDATE homeledger_allocations SET {column} = ? WHERE allocation_id = ?",
                     (value, allocation_id))  # fmt: skip

    def delete_allocation(self, allocation_id: str) -> None:
        self.run("DELETE FROM homeledger_allocations WHERE allocation_id = ?", (allocation_id,))

    def add_allocation(self, allocation_id: str, initiative: str, year: int, cents: int) -> None:
        """A row of the allocation table that no fact made."""
        self.run("INSERT INTO homeledger_allocations VALUES (?, ?, ?, ?, 0)",
                 (allocation_id, initiative, year, cents))  # fmt: skip

    def delete_receipt(self, command_id: str) -> None:
        self.run("DELETE FROM homeledger_commands WHERE command_id = ?", (command_id,))

    def snapshot_versions(self) -> list[int]:
        rows = self.run("SELECT originator_version FROM stored_snapshots "
                        "ORDER BY originator_version")  # fmt: skip
        return [int(r[0]) for r in rows]

    def snapshot(self, version: int) -> bytes:
        rows = self.run("SELECT state FROM stored_snapshots WHERE originator_version = ?",
                        (version,))  # fmt: skip
        return bytes(rows[0][0])

    def write_snapshot(self, version: int, state: bytes) -> None:
        """A snapshot row at `version` holding `state`, replacing any there."""
        originator = self.row(self.positions()[0])[0]
        self.run("DELETE FROM stored_snapshots WHERE originator_version = ?", (version,))
        self.run("INSERT INTO stored_snapshots (originator_id, originator_version, topic, "
                 "state) VALUES (?, ?, ?, ?)",
                 (originator, version, "homeledger:snapshot", state))  # fmt: skip


@contextmanager
def raw_events(url: str | Path) -> Iterator[RawEvents]:
    raw = RawEvents(url)
    try:
        yield raw
    finally:
        raw.close()


# The stream.


async def publish_raw_async(url: str, subject: str, payload: dict[str, Any] | bytes,
                            headers: dict[str, str]) -> None:  # fmt: skip
    nc = await nats.connect(url)
    try:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await nc.jetstream().publish(subject, data, headers=headers)
    finally:
        await nc.close()


def publish_raw(url: str, subject: str, payload: dict[str, Any] | bytes,
                headers: dict[str, str]) -> None:  # fmt: skip
    """Publish any message to the stream, as a client with publish rights could."""
    asyncio.run(publish_raw_async(url, subject, payload, headers))


def next_fact(last: dict[str, Any], how: str = "", **fields: Any) -> dict[str, Any]:
    """A published envelope after `last` (with `fields` changed: type, scope, data...),
    correctly chained, or breaking the chain one way (`how`): prev-hash, version-gap,
    unknown-type, content."""
    event = {**last, "event_id": str(uuid.uuid4()), "position": last["position"] + 1,
             "aggregate_version": last["aggregate_version"] + 1, "prev_hash": last["hash"],
             **fields}  # fmt: skip
    if how == "prev-hash":  # an event went missing before it
        event["prev_hash"] = "f" * 64
    elif how == "version-gap":
        event["aggregate_version"] += 1
    elif how == "unknown-type":
        event["type"] = "FundsStolen"
    body = {k: v for k, v in event.items() if k not in ("position", "scope")}
    event["hash"] = chain_hash(body)
    if how == "content":  # edited after it was hashed
        event["data"] = {**event["data"], "digest": "0" * 64}
    return event


def _own_date(event_type: str, data: dict[str, Any], default: str) -> str:
    """The effective date a fact's envelope must carry: its own date, if it has one."""
    try:
        fact = event_from_data(event_type, 1, data)
    except (ValueError, KeyError):
        return default
    return fact.business_date(date.fromisoformat(default)).isoformat()
