"""Plain SQL connections to the store's database, for whoever keeps tables of their own
beside the events (the read models, a consumer's store).

SQLite: the same file, through the standard library's sqlite3. PostgreSQL: the same
database and schema, through psycopg, in autocommit mode (callers open transactions).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from homeledger.adapters.postgres import Timeouts, bounded, connection_kwargs
from homeledger.adapters.settings import StoreLocation


def connect(location: StoreLocation, timeouts: Timeouts) -> Any:
    """A DB-API connection to the location's database (sqlite3 or psycopg), whose waits
    are bounded by `timeouts`."""
    if location.kind == "sqlite":
        return _connect_sqlite(location, timeouts)
    return _connect_postgres(location, timeouts)


def create_private(location: StoreLocation) -> None:
    """Create an SQLite store's file readable and writable by its owner only (0600),
    whatever the umask, if it is not there yet. SQLite gives its journal and
    write-ahead log files the database file's permissions."""
    if location.kind != "sqlite" or location.in_memory:
        return
    try:
        os.close(os.open(location.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return  # an existing store keeps the permissions it has


def _connect_sqlite(location: StoreLocation, timeouts: Timeouts) -> sqlite3.Connection:
    create_private(location)
    # An in-memory store cannot be shared between connections: a connection to
    # ":memory:" gets an in-memory database of its own.
    conn = sqlite3.connect(
        location.path, isolation_level=None, timeout=timeouts.lock, check_same_thread=False
    )
    # In WAL mode NORMAL survives a crashed process; at worst a power cut loses the
    # last pages, and then their tracking position with them.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _connect_postgres(location: StoreLocation, timeouts: Timeouts) -> Any:
    from psycopg import sql as pg_sql

    connection = bounded(timeouts, f"PostgreSQL at {location.display}")
    conn = connection.connect(
        host=location.host, port=location.port, user=location.user,
        password=location.password or None, dbname=location.dbname, autocommit=True,
        **connection_kwargs(timeouts),
    )  # fmt: skip
    conn.execute(pg_sql.SQL("SET search_path TO {}").format(pg_sql.Identifier(location.schema)))
    return conn
