"""Store files: private to their owner, and each used for what it is.

An SQLite store (the ledger's, or a consumer's built by `project --from-nats`) is
created 0600 whatever the umask, and so are its journal and write-ahead log; an
existing file keeps its permissions. A consumer-side store holds read models, not
facts: recording a command there is refused (exit 2, one line) and writes nothing.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeledger.adapters.settings import store_location
from homeledger.cli.main import cli
from homeledger.projections.db import ProjectionDB
from homeledger.projections.stream_projector import StreamProjector

INIT = ["init", "--donor", "D", "--beneficiary", "B", "--rate", "100.00", "--currency", "EUR",
        "--basis", "year-end", "--start", "2021-01-01"]  # fmt: skip


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common umask 022, under which files are created 0644 unless asked otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path, name: str) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()
            if p.name.startswith(name)}  # fmt: skip


def test_a_new_ledger_store_and_its_journals_are_private(tmp_path: Path, open_umask: None) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["--store", url, *INIT]).exit_code == 0
    assert runner.invoke(cli, ["--store", url, "balances"]).exit_code == 0  # projections too
    with closing(sqlite3.connect(tmp_path / "ledger.db")) as db:  # a write-ahead log
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        found = modes(tmp_path, "ledger.db")
        assert {"ledger.db", "ledger.db-wal"} <= set(found)
        assert set(found.values()) == {0o600}, found


def test_a_new_consumer_store_is_private(tmp_path: Path, open_umask: None) -> None:
    db = ProjectionDB(store_location(f"sqlite:///{tmp_path / 'consumer.db'}"))
    try:
        StreamProjector(db, "HOMELEDGER").open()
    finally:
        db.close()
    assert set(modes(tmp_path, "consumer.db").values()) == {0o600}


def test_an_existing_store_keeps_its_permissions(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    assert CliRunner().invoke(cli, ["--store", f"sqlite:///{path}", *INIT]).exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.fixture
def consumer_store(store_url: str) -> str:
    """A consumer-side store (as `project --from-nats` makes it), on SQLite or PostgreSQL."""
    db = ProjectionDB(store_location(store_url))
    try:
        StreamProjector(db, "HOMELEDGER").open()
    finally:
        db.close()
    return store_url


def tables(url: str) -> set[str]:
    location = store_location(url)
    if location.kind == "sqlite":
        with closing(sqlite3.connect(location.path)) as db:
            return {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public'").fetchall()  # fmt: skip
        return {r[0] for r in rows}


@pytest.mark.parametrize(
    "command",
    [INIT, ["units", "acquire", "--country", "SE", "--units", "1", "--on", "2021-01-01"],
     ["pledge", "--year", "2021"], ["seal"]],
    ids=["init", "units", "pledge", "seal"],
)  # fmt: skip
def test_recording_on_a_consumer_store_is_refused(consumer_store: str, command: list[str]) -> None:
    before = tables(consumer_store)
    result = CliRunner().invoke(cli, ["--store", consumer_store, *command])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "consumer-side store" in result.stderr
    assert tables(consumer_store) == before  # no events table was created
