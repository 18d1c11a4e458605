"""The PostgreSQL recorder of the event store: the library's, extended with the
command-receipt and allocation tables and write sessions (see `recorders`, which holds
what both back ends share). Imported only for a postgresql:// store: it loads psycopg."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from homeledger.adapters.idempotency import Receipt
from homeledger.adapters.recorders import (
    _RECEIPT_COLUMNS,
    ALLOCATIONS_AT_TABLE,
    ALLOCATIONS_TABLE,
    INSERT_CHUNK,
    RECEIPTS_TABLE,
    SCHEMA_LOCK_KEY,
    AllocationRow,
    WriteCursor,
    WritesInSessions,
    _chunks,
    _receipt_row,
)


class LedgerPostgresRecorder(WritesInSessions, PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.receipts = Identifier(self.datastore.schema), Identifier(RECEIPTS_TABLE)
        self.events = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} ("
                "command_id text PRIMARY KEY, fingerprint text NOT NULL, "
                "first_version bigint NOT NULL, last_version bigint NOT NULL)"
            ).format(*self.receipts)
        )
        self.allocations = Identifier(self.datastore.schema), Identifier(ALLOCATIONS_TABLE)
        self.allocations_at_table = (Identifier(self.datastore.schema),
                                     Identifier(ALLOCATIONS_AT_TABLE))  # fmt: skip
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (allocation_id text PRIMARY KEY, "
                "initiative text NOT NULL, year bigint NOT NULL, amount bigint NOT NULL, "
                "released bigint NOT NULL)"
            ).format(*self.allocations),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (id int PRIMARY KEY CHECK (id = 1), "
                "version bigint NOT NULL)"
            ).format(*self.allocations_at_table),
        ]
        # One statement for any number of receipts (no executemany: it pipelines).
        self.insert_receipts_statement = SQL(
            "INSERT INTO {}.{} SELECT * FROM unnest(%s::text[], %s::text[], "
            "%s::bigint[], %s::bigint[])"
        ).format(*self.receipts)

    @contextmanager
    def writing(self, *, commit: bool) -> Iterator[WriteCursor]:
        """A transaction holding the events table's write lock from its start.

        No pipeline mode: the library's own insert path sends everything through one
        psycopg pipeline, and with tens of thousands of facts its send and receive
        buffers can fill each other (the client waits for results the server has not
        been sent all of, the server for the rest of the query: a hang, psycopg issue
        685). Here each statement is sent whole and answered before the next. No
        library retry either: a failure is reported.
        """
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(force_rollback=not commit),
            conn.cursor() as cursor,
        ):
            # The table lock first: writers queue on it (and give up after the lock
            # timeout), so that positions are handed out in commit order.
            self._lock_table(cursor)
            self._notify_channel(cursor)
            yield cursor

    def insert_in(self, cursor: Any, stored_events: Sequence[StoredEvent],
                  receipts: Sequence[Receipt]) -> list[int]:  # fmt: skip
        """Insert facts, then receipts, in the session; the facts' positions, in order."""
        positions: list[int] = []
        for chunk in _chunks(stored_events, INSERT_CHUNK):
            rows = [self.construct_pg_stored_event(e.originator_id, e.originator_version,
                                                   e.topic, e.state) for e in chunk]  # fmt: skip
            cursor.execute(self.insert_events_statement, (rows,))
            positions += [row["notification_id"] for row in cursor.fetchall()]
        for chunk in _chunks(receipts, INSERT_CHUNK):
            columns = [list(column) for column in zip(*map(_receipt_row, chunk), strict=True)]
            cursor.execute(self.insert_receipts_statement, columns)
        return positions

    def receipts_in(self, cursor: Any, command_ids: Sequence[str]) -> dict[str, Receipt]:
        if not command_ids:
            return {}
        cursor.execute(
            SQL(f"SELECT {_RECEIPT_COLUMNS} FROM {{}}.{{}} WHERE command_id = ANY(%s)").format(
                *self.receipts
            ),
            (list(command_ids),),
        )
        rows: list[DictRow] = cursor.fetchall()
        return {
            row["command_id"]: Receipt(row["command_id"], row["fingerprint"],
                                       row["first_version"], row["last_version"])
            for row in rows
        }  # fmt: skip

    def by_version_in(self, cursor: Any, originator_id: UUID, first: int,
                      last: int) -> list[Notification]:  # fmt: skip
        """The facts of versions first..last (inclusive), as notifications, in order."""
        cursor.execute(
            SQL(
                "SELECT * FROM {}.{} WHERE originator_id=%s AND originator_version>=%s "
                "AND originator_version<=%s ORDER BY originator_version"
            ).format(*self.events),
            (originator_id, first, last),
        )
        return _notifications(cursor.fetchall())

    def allocations_in(self, cursor: Any, ids: Sequence[str]) -> dict[str, AllocationRow]:
        if not ids:
            return {}
        cursor.execute(SQL("SELECT * FROM {}.{} WHERE allocation_id = ANY(%s)").format(
            *self.allocations), (list(set(ids)),))  # fmt: skip
        return {row["allocation_id"]: (row["allocation_id"], row["initiative"], row["year"],
                                       row["amount"], row["released"])
                for row in cursor.fetchall()}  # fmt: skip

    def allocation_in(self, cursor: Any, allocation_id: str) -> AllocationRow | None:
        cursor.execute(SQL("SELECT * FROM {}.{} WHERE allocation_id = %s").format(
            *self.allocations), (allocation_id,))  # fmt: skip
        row = cursor.fetchone()
        if row is None:
            return None
        return (row["allocation_id"], row["initiative"], row["year"], row["amount"],
                row["released"])  # fmt: skip

    def save_allocations_in(self, cursor: Any, rows: Sequence[AllocationRow],
                            version: int) -> None:  # fmt: skip
        """Upsert allocations, and say the table is current at ledger `version`."""
        for chunk in _chunks(rows, INSERT_CHUNK):
            columns = [list(column) for column in zip(*chunk, strict=True)]
            cursor.execute(SQL(
                "INSERT INTO {}.{} SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], "
                "%s::bigint[], %s::bigint[]) ON CONFLICT (allocation_id) "
                "DO UPDATE SET released = excluded.released").format(*self.allocations),
                columns)  # fmt: skip
        cursor.execute(SQL("INSERT INTO {}.{} VALUES (1, %s) ON CONFLICT (id) "
                           "DO UPDATE SET version = excluded.version").format(
            *self.allocations_at_table), (version,))  # fmt: skip

    def clear_allocations_in(self, cursor: Any) -> None:
        cursor.execute(SQL("DELETE FROM {}.{}").format(*self.allocations))
        cursor.execute(SQL("DELETE FROM {}.{}").format(*self.allocations_at_table))

    def allocations_at_in(self, cursor: Any) -> int | None:
        cursor.execute(SQL("SELECT version FROM {}.{} WHERE id = 1").format(
            *self.allocations_at_table))  # fmt: skip
        row = cursor.fetchone()
        return int(row["version"]) if row else None

    def allocation(self, allocation_id: str) -> AllocationRow | None:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            return self.allocation_in(cursor, allocation_id)

    def allocations_at(self) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            return self.allocations_at_in(cursor)

    def tables_exist(self, *others: str) -> bool:
        names = [self.events_table_name, RECEIPTS_TABLE, *others]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT count(*) AS n FROM information_schema.tables "
                "WHERE table_schema=%s AND table_name = ANY(%s)",
                (self.datastore.schema, names),
            )
            row = curs.fetchone()
        return bool(row and row["n"] == len(names))

    def create_tables_serially(self, *others: Any) -> None:
        """Create the tables under an advisory lock: racing CREATE OR REPLACE fails."""
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
            try:
                for recorder in (self, *others):
                    recorder.create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))

    def select_receipt(self, command_id: str) -> Receipt | None:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            return self.receipts_in(cursor, [command_id]).get(command_id)

    def select_receipts(self, after_first_version: int, limit: int) -> list[Receipt]:
        """Receipts in the order of the versions they recorded, after one."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT command_id, fingerprint, first_version, last_version FROM {}.{} "
                    "WHERE first_version > %s ORDER BY first_version LIMIT %s"
                ).format(*self.receipts),
                (after_first_version, limit),
            )
            rows: list[DictRow] = curs.fetchall()
        return [Receipt(r["command_id"], r["fingerprint"], r["first_version"],
                        r["last_version"]) for r in rows]  # fmt: skip

    def select_notifications_by_version(
        self, originator_id: UUID, first: int, last: int
    ) -> list[Notification]:
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            return self.by_version_in(cursor, originator_id, first, last)

    def head_in(self, cursor: Any) -> int:
        """The last position (0 when there is none), read in the session."""
        cursor.execute(SQL("SELECT MAX(notification_id) AS head FROM {}.{}").format(*self.events))
        row = cursor.fetchone()
        return int(row["head"] or 0) if row else 0

    def positions_in(self, cursor: Any, first: int, last: int) -> list[Notification]:
        """The facts at positions first..last (inclusive), in order."""
        cursor.execute(
            SQL("SELECT * FROM {}.{} WHERE notification_id>=%s AND notification_id<=%s "
                "ORDER BY notification_id").format(*self.events),
            (first, last),
        )
        return _notifications(cursor.fetchall())


def _notifications(rows: Sequence[Any]) -> list[Notification]:
    return [
        Notification(id=row["notification_id"], originator_id=row["originator_id"],
                     originator_version=row["originator_version"], topic=row["topic"],
                     state=bytes(row["state"]))
        for row in rows
    ]  # fmt: skip
