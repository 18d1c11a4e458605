"""The eventsourcing library's recorders, extended with the command-receipt table and
write sessions.

A receipt (command id, fingerprint, versions recorded) is inserted in the same
transaction as the command's facts, so a command id is recorded at most once even when
two processes race with it, and a repeat can answer as the first time did.

A write session (`writing`) is one transaction that holds the store's write lock from
its start: facts and receipts are inserted in bounded statements, and what the session
wrote is read back through its own cursor (SQLite's in-process reader/writer interlock
would make any other connection wait for the session to end). It commits or rolls back
as a whole, so an import of any size is all or nothing.

The PostgreSQL recorder lives in `postgres_recorder` (it needs psycopg, which a SQLite
store never imports).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, Union
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from homeledger.adapters.idempotency import Receipt

if TYPE_CHECKING:
    from homeledger.adapters.postgres_recorder import LedgerPostgresRecorder

RECEIPTS_TABLE = "homeledger_commands"
# Every allocation ever made, kept current in the same transaction as the facts, and the
# ledger version it is current at: the decision state does not hold them in memory.
ALLOCATIONS_TABLE = "homeledger_allocations"
ALLOCATIONS_AT_TABLE = "homeledger_allocations_at"
AllocationRow = tuple[str, str, int, int, int]  # id, initiative, year, amount, released (cents)
INSERT_CHUNK = 2000  # facts per INSERT statement: bounded messages whatever the batch
SCHEMA_LOCK_KEY = 0x686C6564  # pg_advisory_lock key for creating homeledger's tables
_RECEIPT_COLUMNS = "command_id, fingerprint, first_version, last_version"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _receipt_row(r: Receipt) -> tuple[str, str, int, int]:
    return (r.command_id, r.fingerprint, r.first_version, r.last_version)


# Every stored fact has the one ledger id: parse its text once, not once per row read.
_uuid = lru_cache(maxsize=64)(UUID)


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class WriteCursor(Protocol):
    """The cursor of a write session (sqlite3's, wrapped by the library, or psycopg's)."""

    def execute(self, *args: Any, **kwargs: Any) -> Any: ...
    def fetchall(self) -> Any: ...


class WritesInSessions:
    """The library's `insert_events` as one write session of ours: facts and receipts in
    one transaction that holds the store's write lock from its start."""

    def writing(self, *, commit: bool) -> AbstractContextManager[WriteCursor]:
        raise NotImplementedError

    def insert_in(self, cursor: Any, stored_events: Sequence[StoredEvent],
                  receipts: Sequence[Receipt]) -> Sequence[int] | None:  # fmt: skip
        raise NotImplementedError

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.writing(commit=True) as cursor:
            return self.insert_in(cursor, stored_events, kwargs.get("receipts", ()))


class LedgerSQLiteRecorder(WritesInSessions, SQLiteApplicationRecorder):
    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type == "uuid":
            try:
                return _uuid(originator_id)
            except (ValueError, TypeError, AttributeError):  # a row edited by hand
                return str(originator_id)  # not the ledger's: verify reports it
        return originator_id

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {RECEIPTS_TABLE} ("
            "command_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
            "first_version INTEGER NOT NULL, last_version INTEGER NOT NULL) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {ALLOCATIONS_TABLE} ("
            "allocation_id TEXT PRIMARY KEY, initiative TEXT NOT NULL, year INTEGER NOT NULL, "
            "amount INTEGER NOT NULL, released INTEGER NOT NULL) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {ALLOCATIONS_AT_TABLE} ("
            "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
        ]

    def allocations_in(self, cursor: Any, ids: Sequence[str]) -> dict[str, AllocationRow]:
        found: dict[str, AllocationRow] = {}
        for chunk in _chunks(list(set(ids)), 500):
            marks = ",".join("?" * len(chunk))
            cursor.execute(f"SELECT * FROM {ALLOCATIONS_TABLE} WHERE allocation_id IN ({marks})",
                           tuple(chunk))  # fmt: skip
            found.update((row[0], tuple(row)) for row in cursor.fetchall())
        return found

    def allocation_in(self, cursor: Any, allocation_id: str) -> AllocationRow | None:
        cursor.execute(f"SELECT * FROM {ALLOCATIONS_TABLE} WHERE allocation_id = ?",
                       (allocation_id,))  # fmt: skip
        row = cursor.fetchone()
        return tuple(row) if row else None

    def save_allocations_in(self, cursor: Any, rows: Sequence[AllocationRow],
                            version: int) -> None:  # fmt: skip
        """Upsert allocations, and say the table is current at ledger `version`."""
        cursor.executemany(
            f"INSERT INTO {ALLOCATIONS_TABLE} VALUES (?,?,?,?,?) ON CONFLICT (allocation_id) "
            "DO UPDATE SET released = excluded.released", rows,
        )  # fmt: skip
        cursor.execute(f"INSERT INTO {ALLOCATIONS_AT_TABLE} VALUES (1, ?) ON CONFLICT (id) "
                       "DO UPDATE SET version = excluded.version", (version,))  # fmt: skip

    def clear_allocations_in(self, cursor: Any) -> None:
        cursor.execute(f"DELETE FROM {ALLOCATIONS_TABLE}")
        cursor.execute(f"DELETE FROM {ALLOCATIONS_AT_TABLE}")

    def allocations_at_in(self, cursor: Any) -> int | None:
        cursor.execute(f"SELECT version FROM {ALLOCATIONS_AT_TABLE} WHERE id = 1")
        row = cursor.fetchone()
        return int(row[0]) if row else None

    def allocation(self, allocation_id: str) -> AllocationRow | None:
        with self.datastore.transaction(commit=False) as cursor:
            return self.allocation_in(cursor, allocation_id)

    def allocations_at(self) -> int | None:
        with self.datastore.transaction(commit=False) as cursor:
            return self.allocations_at_in(cursor)

    @contextmanager
    def writing(self, *, commit: bool) -> Iterator[WriteCursor]:
        """A transaction holding the database's write lock from its first statement."""
        pool = self.datastore.pool
        conn = pool.get_connection(is_writer=True)  # the library's in-process interlock
        try:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first insert
            try:
                yield cursor
            except BaseException:
                conn.rollback()
                raise
            if commit:
                conn.commit()
            else:
                conn.rollback()
        finally:
            pool.put_connection(conn)

    def insert_in(self, cursor: Any, stored_events: Sequence[StoredEvent],
                  receipts: Sequence[Receipt]) -> list[int]:  # fmt: skip
        """Insert receipts, then facts, in the session; the facts' positions, in order."""
        if receipts:
            cursor.executemany(f"INSERT INTO {RECEIPTS_TABLE} VALUES (?,?,?,?)",
                               [_receipt_row(r) for r in receipts])  # fmt: skip
        # The library inserts one row per statement to read each row's id back. A session
        # holds the write lock, so the positions are known beforehand: the head's next
        # ones (as SQLite itself would give them), named explicitly and inserted in
        # chunks of one statement each, three times faster.
        first = self.head_in(cursor) + 1
        rows = [(first + index, _hex(s.originator_id), s.originator_version, s.topic, s.state)
                for index, s in enumerate(stored_events)]  # fmt: skip
        statement = (f"INSERT INTO {self.events_table_name} (rowid, originator_id, "
                     "originator_version, topic, state) VALUES (?,?,?,?,?)")  # fmt: skip
        for chunk in _chunks(rows, INSERT_CHUNK):
            cursor.executemany(statement, chunk)
        return list(range(first, first + len(rows)))

    def receipts_in(self, cursor: Any, command_ids: Sequence[str]) -> dict[str, Receipt]:
        found: dict[str, Receipt] = {}
        for chunk in _chunks(command_ids, 500):
            marks = ",".join("?" * len(chunk))
            cursor.execute(f"SELECT {_RECEIPT_COLUMNS} FROM {RECEIPTS_TABLE} "
                           f"WHERE command_id IN ({marks})", tuple(chunk))  # fmt: skip
            found.update((row[0], Receipt(*row)) for row in cursor.fetchall())
        return found

    def by_version_in(self, cursor: Any, originator_id: UUID, first: int,
                      last: int) -> list[Notification]:  # fmt: skip
        """The facts of versions first..last (inclusive), as notifications, in order."""
        cursor.execute(
            f"SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE originator_id=? "
            "AND originator_version>=? AND originator_version<=? ORDER BY originator_version",
            (originator_id.hex, first, last),
        )
        return [
            Notification(id=row[0], originator_id=self.convert_originator_id(row[1]),
                         originator_version=row[2], topic=row[3], state=row[4])
            for row in cursor.fetchall()
        ]  # fmt: skip

    def head_in(self, cursor: Any) -> int:
        """The last position (0 when there is none), read in the session."""
        cursor.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
        row = cursor.fetchone()
        return int(row[0] or 0) if row else 0

    def positions_in(self, cursor: Any, first: int, last: int) -> list[Notification]:
        """The facts at positions first..last (inclusive), in order (a reversal's target
        read in a write session, which no other connection could read beside)."""
        cursor.execute(
            f"SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE rowid>=? AND rowid<=? ORDER BY rowid",
            (first, last),
        )
        return [
            Notification(id=row[0], originator_id=self.convert_originator_id(row[1]),
                         originator_version=row[2], topic=row[3], state=row[4])
            for row in cursor.fetchall()
        ]  # fmt: skip

    def select_receipt(self, command_id: str) -> Receipt | None:
        with self.datastore.transaction(commit=False) as cursor:
            return self.receipts_in(cursor, [command_id]).get(command_id)

    def select_receipts(self, after_first_version: int, limit: int) -> list[Receipt]:
        """Receipts in the order of the versions they recorded, after one."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT command_id, fingerprint, first_version, last_version "
                f"FROM {RECEIPTS_TABLE} WHERE first_version > ? "
                f"ORDER BY first_version LIMIT ?",
                (after_first_version, limit),
            )
            return [Receipt(*row) for row in c.fetchall()]

    def select_notifications_by_version(
        self, originator_id: UUID, first: int, last: int
    ) -> list[Notification]:
        with self.datastore.transaction(commit=False) as cursor:
            return self.by_version_in(cursor, originator_id, first, last)


def __getattr__(name: str) -> Any:
    """LedgerPostgresRecorder, imported (with psycopg) only when a PostgreSQL store asks
    for it: a SQLite store never loads psycopg."""
    if name == "LedgerPostgresRecorder":
        from homeledger.adapters.postgres_recorder import LedgerPostgresRecorder

        return LedgerPostgresRecorder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


LedgerRecorder = Union[LedgerSQLiteRecorder, "LedgerPostgresRecorder"]
__all__ = ["LedgerPostgresRecorder", "LedgerRecorder", "LedgerSQLiteRecorder",
           "SQLiteDatastore", "WriteCursor"]
