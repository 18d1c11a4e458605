"""The eventsourcing library's recorders, extended with the command-receipt table.

A receipt (command id, fingerprint, versions recorded) is inserted in the same
transaction as the command's events, so a command id is recorded at most once even
when two processes race with it, and a repeat can answer as the first time did.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from homeledger.adapters.idempotency import Receipt

RECEIPTS_TABLE = "homeledger_commands"
INSERT_CHUNK = 2000  # facts per INSERT statement: bounded messages whatever the batch
SCHEMA_LOCK_KEY = 0x686C6564  # pg_advisory_lock key for creating homeledger's tables


def _receipt_rows(kwargs: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    receipts: Sequence[Receipt] = kwargs.get("receipts", ())
    return [(r.command_id, r.fingerprint, r.first_version, r.last_version) for r in receipts]


def _chunks(items: Sequence[StoredEvent], size: int) -> list[Sequence[StoredEvent]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# Every stored fact has the one ledger id: parse its text once, not once per row read.
_uuid = lru_cache(maxsize=64)(UUID)


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type == "uuid":
            return _uuid(originator_id)
        return originator_id

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {RECEIPTS_TABLE} ("
            "command_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
            "first_version INTEGER NOT NULL, last_version INTEGER NOT NULL) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        rows = _receipt_rows(kwargs)
        if rows:
            c.executemany(f"INSERT INTO {RECEIPTS_TABLE} VALUES (?,?,?,?)", rows)
        return super()._insert_events(c, stored_events, **kwargs)

    def select_receipt(self, command_id: str) -> Receipt | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT command_id, fingerprint, first_version, last_version "
                f"FROM {RECEIPTS_TABLE} WHERE command_id=?",
                (command_id,),
            )
            row = c.fetchone()
        return Receipt(*row) if row else None

    def select_notifications_by_version(
        self, originator_id: UUID, first: int, last: int
    ) -> list[Notification]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, * FROM {self.events_table_name} WHERE originator_id=? "
                "AND originator_version>=? AND originator_version<=? ORDER BY originator_version",
                (originator_id.hex, first, last),
            )
            return [
                Notification(
                    id=row["rowid"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.receipts = Identifier(self.datastore.schema), Identifier(RECEIPTS_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} ("
                "command_id text PRIMARY KEY, fingerprint text NOT NULL, "
                "first_version bigint NOT NULL, last_version bigint NOT NULL)"
            ).format(*self.receipts)
        )
        # One statement for any number of receipts (no executemany: it pipelines).
        self.insert_receipts_statement = SQL(
            "INSERT INTO {}.{} SELECT * FROM unnest(%s::text[], %s::text[], "
            "%s::bigint[], %s::bigint[])"
        ).format(*self.receipts)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert facts and their receipts in one transaction, without pipeline mode.

        The library's own path sends everything through one psycopg pipeline; with
        tens of thousands of facts its send and receive buffers can fill each other
        (the client waits for results the server has not been sent all of, the server
        waits for the rest of the query: a hang, psycopg issue 685). Here each
        statement is sent whole and answered before the next, in bounded chunks, so an
        insert of any size completes. No library retry either: a failure is reported.
        """
        if not stored_events:
            return []
        positions: list[int] = []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # The table lock first: writers queue on it (and give up after the lock
            # timeout), so that positions are handed out in commit order.
            self._lock_table(curs)
            self._notify_channel(curs)
            for chunk in _chunks(stored_events, INSERT_CHUNK):
                rows = [
                    self.construct_pg_stored_event(
                        e.originator_id, e.originator_version, e.topic, e.state
                    )
                    for e in chunk
                ]
                curs.execute(self.insert_events_statement, (rows,))
                positions += [row["notification_id"] for row in curs.fetchall()]
            receipts = _receipt_rows(kwargs)
            if receipts:
                columns = [list(column) for column in zip(*receipts, strict=True)]
                curs.execute(self.insert_receipts_statement, columns)
        return positions

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
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT command_id, fingerprint, first_version, last_version "
                    "FROM {}.{} WHERE command_id=%s"
                ).format(*self.receipts),
                (command_id,),
            )
            row: DictRow | None = curs.fetchone()
        if row is None:
            return None
        return Receipt(
            row["command_id"], row["fingerprint"], row["first_version"], row["last_version"]
        )

    def select_notifications_by_version(
        self, originator_id: UUID, first: int, last: int
    ) -> list[Notification]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT * FROM {}.{} WHERE originator_id=%s AND originator_version>=%s "
                    "AND originator_version<=%s ORDER BY originator_version"
                ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name)),
                (originator_id, first, last),
            )
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


LedgerRecorder = LedgerSQLiteRecorder | LedgerPostgresRecorder
__all__ = ["LedgerPostgresRecorder", "LedgerRecorder", "LedgerSQLiteRecorder",
           "SQLiteDatastore"]
