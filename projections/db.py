"""Where the read models live: the store's own database, through our own connection.

SQLite: the same file as the events, through the standard library's sqlite3.
PostgreSQL: the same database and schema, through psycopg. Every table is named
`hl_proj_*`. Besides the models' tables there are three of our own:

    hl_proj_meta         (key, value)                the projection format version
    hl_proj_tracking     (projection, position)      the last position each model processed
    hl_proj_snapshots    (projection, position, state)  compressed model state every K facts

A model's rows and its tracking position are always written in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from homeledger.adapters import sql
from homeledger.adapters.errors import StoreBusyError, StoreUnavailableError, first_line
from homeledger.adapters.postgres import Timeouts, pg_errors
from homeledger.adapters.settings import StoreLocation
from homeledger.projections.model import Model, Row, Rows, Table, normalise
from homeledger.projections.read_models import MODEL_CLASSES
from homeledger.projections.snapshots import decode_state, encode_state

# Bump when a table or a model's meaning changes: stored projections of another
# format are dropped and rebuilt from the events on first use.
# 2: on SQLite a log table keyed by position alone keys its rows by it (INTEGER
#    PRIMARY KEY, the rowid: no second B-tree), and the postings (keyed by position
#    and line) are a WITHOUT ROWID table.
# 3: the model state kept for as-of reads is called a snapshot (hl_proj_snapshots);
#    the double-entry model is named "postings".
# 4: the audit trail's `reversed_position` column; the balances' log of movements
#    (hl_proj_balance_moves) for cuts by effective date.
PROJECTION_FORMAT = "4"
META = Table("hl_proj_meta", (("key", "TEXT"), ("value", "TEXT")), ("key",))
TRACKING = Table("hl_proj_tracking", (("projection", "TEXT"), ("position", "INT")),
                 ("projection",))  # fmt: skip
SNAPSHOTS = Table(
    "hl_proj_snapshots",
    (("projection", "TEXT"), ("position", "INT"), ("state", "BLOB")),
    ("projection", "position"),
)
OWN_TABLES = (META, TRACKING, SNAPSHOTS)
_PG_TYPES = {"INT": "BIGINT", "TEXT": "TEXT", "BLOB": "BYTEA"}
_LOCK_KEY = 0x686C70726F6A  # "hlproj": serialises schema changes on PostgreSQL


def _failures(sqlite_error: type[BaseException], *pg_names: str) -> tuple[type[BaseException], ...]:
    """The SQLite error and psycopg's of those names (none until psycopg is loaded)."""
    return (sqlite_error, *pg_errors(*pg_names))


class ConflictError(Exception):
    """Another runner moved a projection on first; reload and carry on from there."""


def all_tables() -> list[Table]:
    return [*OWN_TABLES, *(t for cls in MODEL_CLASSES.values() for t in cls.TABLES)]


class Tx:
    """One transaction: queries with `?` placeholders on either database."""

    def __init__(self, cursor: Any, kind: str) -> None:
        self.cursor = cursor
        self.kind = kind

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.execute(sql, params)
        return [tuple(row) for row in self.cursor.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if params:
            self.cursor.execute(self._sql(sql), tuple(params))
        else:
            self.cursor.execute(sql)

    def insert(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        names = ", ".join(table.column_names)
        if self.kind == "postgresql":
            with self.cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(table.columns))
        self.cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)

    def upsert(self, table: Table, rows: Iterable[Row]) -> None:
        rows = list(rows)
        if not rows:
            return
        names = table.column_names
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in table.key)
        sql = (
            f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}"
        )
        self.cursor.executemany(self._sql(sql), rows)

    # Tracking and snapshots.

    def tracking(self, names: Iterable[str], *, lock: bool = False) -> dict[str, int]:
        wanted = list(names)
        marks = ", ".join("?" * len(wanted))
        suffix = " FOR UPDATE" if lock and self.kind == "postgresql" else ""
        rows = self.query(
            f"SELECT projection, position FROM {TRACKING.name} "
            f"WHERE projection IN ({marks}){suffix}",
            wanted,
        )
        found: dict[str, int] = {str(name): int(pos) for name, pos in rows}
        return {name: int(found.get(name, 0)) for name in wanted}

    def set_tracking(self, name: str, position: int) -> None:
        self.upsert(TRACKING, [(name, position)])

    def save_snapshot(self, name: str, position: int, rows: Rows) -> None:
        self.upsert(SNAPSHOTS, [(name, position, encode_state(rows))])

    def nearest_snapshot(self, name: str, position: int) -> tuple[int, Rows] | None:
        rows = self.query(
            f"SELECT position, state FROM {SNAPSHOTS.name} WHERE projection = ? "
            "AND position <= ? ORDER BY position DESC LIMIT 1",
            (name, position),
        )
        if not rows:
            return None
        return int(rows[0][0]), decode_state(rows[0][1])

    def snapshot_positions(self, name: str) -> list[int]:
        rows = self.query(
            f"SELECT position FROM {SNAPSHOTS.name} WHERE projection = ? ORDER BY position",
            (name,),
        )
        return [int(row[0]) for row in rows]

    # Models.

    def load_state(self, cls: type[Model], position: int) -> Rows:
        """A model's compact state as stored, as of `position` for log-backed models."""
        return {
            name: normalise(self.query(sql, (position,) if "?" in sql else ()))
            for name, sql in cls.STATE_QUERIES.items()
        }

    def write_rows(self, cls: type[Model], rows: Rows) -> None:
        for table in cls.TABLES:
            written = rows.get(table.name)
            if written:
                (self.insert if table.log else self.upsert)(table, written)

    def log_rows(self, table: Table, first: int, last: int) -> list[Row]:
        """Stored rows of a log table for positions first..last, in key order."""
        return self.query(
            f"SELECT * FROM {table.name} WHERE position >= ? AND position <= ? "
            f"ORDER BY {', '.join(table.key)}",
            (first, last),
        )

    def clear(self, cls: type[Model]) -> None:
        """Drop a model's rows and snapshots and send it back to position 0."""
        for table in cls.TABLES:
            self.execute(f"DELETE FROM {table.name}")
        self.execute(f"DELETE FROM {SNAPSHOTS.name} WHERE projection = ?", (cls.NAME,))
        self.set_tracking(cls.NAME, 0)


class ProjectionDB:
    """A connection to the store's database for the read models."""

    def __init__(self, location: StoreLocation, timeouts: Timeouts | None = None) -> None:
        self.kind = location.kind
        self.display = location.display
        try:
            self.conn: Any = sql.connect(location, timeouts or Timeouts(location.connect_timeout))
        except _failures(sqlite3.Error) as exc:
            raise StoreUnavailableError(
                f"cannot open the projections of {location.display}: {first_line(exc)}"
            ) from None
        self._ready = False

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction: it holds the write lock from its first statement."""
        with self._errors():
            if self.kind == "sqlite":
                yield from self._sqlite_tx("BEGIN IMMEDIATE")
            else:
                with self.conn.transaction(), self.conn.cursor() as cursor:
                    yield Tx(cursor, self.kind)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction: every query in it sees the same committed state."""
        with self._errors():
            if self.kind == "sqlite":
                yield from self._sqlite_tx("BEGIN")
            else:
                with self.conn.transaction(), self.conn.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield Tx(cursor, self.kind)

    def _sqlite_tx(self, begin: str) -> Iterator[Tx]:
        cursor = self.conn.cursor()
        cursor.execute(begin)
        try:
            yield Tx(cursor, self.kind)
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _failures(sqlite3.OperationalError, "LockNotAvailable") as exc:
            if "locked" in str(exc) or "lock" in type(exc).__name__.lower():
                raise StoreBusyError(
                    f"the projections stayed locked by another process: {first_line(exc)}"
                ) from None
            raise StoreUnavailableError(f"projections: {first_line(exc)}") from None
        except _failures(sqlite3.Error) as exc:
            raise StoreUnavailableError(f"projections: {first_line(exc)}") from None

    def ensure_schema(self) -> None:
        """Create the tables once; drop and recreate them if their format changed."""
        if self._ready:
            return
        with self.write() as tx:
            if self.kind == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            if self._stored_format(tx) not in (None, PROJECTION_FORMAT):
                for name in self._existing(tx):
                    tx.execute(f"DROP TABLE {name}")
            for table in all_tables():
                self._create(tx, table)
            tx.upsert(META, [("format", PROJECTION_FORMAT)])
            tx.execute(
                f"INSERT INTO {TRACKING.name} (projection, position) VALUES "
                + ", ".join("(?, 0)" for _ in MODEL_CLASSES)
                + " ON CONFLICT (projection) DO NOTHING",
                list(MODEL_CLASSES),
            )
        self._ready = True

    def trust_schema(self) -> None:
        """Take the tables as ensured: another process did so just now, and dropped
        indexes for a rebuild that `ensure_schema` would create again row by row."""
        self._ready = True

    def forget_schema(self) -> None:
        """Check the tables again at the next `ensure_schema` (an index may be missing)."""
        self._ready = False

    def _stored_format(self, tx: Tx) -> str | None:
        if META.name not in self._existing(tx):
            return None
        rows = tx.query(f"SELECT value FROM {META.name} WHERE key = 'format'")
        return str(rows[0][0]) if rows else None

    def _existing(self, tx: Tx) -> list[str]:
        if self.kind == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'hl_proj_%'"
        else:
            sql = (
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name LIKE 'hl_proj_%'"
            )
        return [str(row[0]) for row in tx.query(sql)]

    def _create(self, tx: Tx, table: Table) -> None:
        tx.execute(create_table_sql(table, self.kind))
        create_indexes(tx, table)


def create_table_sql(table: Table, kind: str) -> str:
    """CREATE TABLE IF NOT EXISTS for a table, in the layout of PROJECTION_FORMAT."""
    if kind == "postgresql":
        columns = ", ".join(f"{name} {_PG_TYPES.get(t, t)}" for name, t in table.columns)
        return (f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, "
                f"PRIMARY KEY ({', '.join(table.key)}))")  # fmt: skip
    if table.log and len(table.key) == 1 and dict(table.columns)[table.key[0]] == "INT":
        # The position is the rowid itself: rows are stored in position order and found
        # by it without a separate primary-key index.
        columns = ", ".join(
            f"{name} INTEGER PRIMARY KEY" if name == table.key[0] else f"{name} {t}"
            for name, t in table.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {table.name} ({columns})"
    columns = ", ".join(f"{name} {t}" for name, t in table.columns)
    without_rowid = " WITHOUT ROWID" if table.log else ""
    return (f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, "
            f"PRIMARY KEY ({', '.join(table.key)})){without_rowid}")  # fmt: skip


def index_name(table: Table, index: tuple[str, ...]) -> str:
    return f"{table.name}_{'_'.join(index)}"


def create_indexes(tx: Tx, table: Table) -> None:
    for index in table.indexes:
        tx.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(table, index)} "
            f"ON {table.name} ({', '.join(index)})"
        )


def drop_indexes(tx: Tx, table: Table) -> None:
    for index in table.indexes:
        tx.execute(f"DROP INDEX IF EXISTS {index_name(table, index)}")
