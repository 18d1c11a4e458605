"""Projection format 2: the SQLite table layout, and stores of an older format.

Projections are derived data: when their format changes, `ensure_schema` drops the
`hl_proj_*` tables and they are rebuilt from the events, in the ledger's store from its
events and in a consumer store from the envelopes it applied.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from homeledger.adapters.consumer import Delivery
from homeledger.adapters.settings import store_location
from homeledger.domain import reference_case
from homeledger.projections.db import ProjectionDB
from homeledger.projections.read_models import PROJECTIONS
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.stream_projector import StreamProjector
from tests.helpers import MakeApp, dump_projections, record

STREAM = "HOMELEDGER"


def make_old(url: str) -> None:
    """Mark the stored projections as format 1 and leave a stray row in them."""
    path = store_location(url).path
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE hl_proj_meta SET value = '1' WHERE key = 'format'")
        conn.execute("INSERT INTO hl_proj_portfolio VALUES (999999, 'SE', '2021-01-01', 5, 'x')")


def test_sqlite_layout_keys_log_tables_by_position(
    make_app: MakeApp, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    record(app, reference_case.commands()[:40])
    db = ProjectionDB(app.store.location)
    ProjectionRunner(app.store, db, page=7).rebuild()
    with db.read() as tx:
        sql: dict[str, str] = dict(
            tx.query("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        )
        indexes = {row[0] for row in tx.query("SELECT name FROM sqlite_master "
                                              "WHERE type = 'index'")}  # fmt: skip
    for name in ("hl_proj_audit", "hl_proj_timeline", "hl_proj_portfolio"):
        assert "position INTEGER PRIMARY KEY" in sql[name]
        assert not any(index.startswith(f"sqlite_autoindex_{name}") for index in indexes)
    assert sql["hl_proj_postings"].endswith("WITHOUT ROWID")
    # Dropped for the rebuild, built again at its end.
    assert {"hl_proj_audit_initiative_position", "hl_proj_timeline_known_by"} <= indexes
    db.close()


def test_a_store_of_the_old_format_is_rebuilt_from_its_events(
    make_app: MakeApp, sqlite_url: str
) -> None:
    app = make_app(sqlite_url)
    record(app, reference_case.commands())
    db = ProjectionDB(app.store.location)
    ProjectionRunner(app.store, db, page=7, snapshot_every=5).catch_up()
    expected = dump_projections(db)
    db.close()
    make_old(sqlite_url)
    db = ProjectionDB(app.store.location)
    runner = ProjectionRunner(app.store, db, page=7, snapshot_every=5)
    assert runner.catch_up() == app.store.max_position()
    assert dump_projections(db) == expected
    db.close()


def test_a_consumer_store_of_the_old_format_is_rebuilt_from_its_envelopes(
    make_app: MakeApp, sqlite_url: str, tmp_path: Path
) -> None:
    app = make_app(sqlite_url)
    record(app, reference_case.commands())
    deliveries = [Delivery(envelope, "homeledger.events", envelope.position, 1, envelope.to_dict())
                  for envelope in app.store.envelopes()]  # fmt: skip
    half = len(deliveries) // 2
    consumer_url = f"sqlite:///{tmp_path / 'consumer.db'}"
    db = ProjectionDB(store_location(consumer_url))
    projector = StreamProjector(db, STREAM, snapshot_every=5)
    projector.open()
    for start in range(0, half, 9):
        projector.apply_batch(deliveries[start:min(start + 9, half)])
    expected = dump_projections(db)
    db.close()
    make_old(consumer_url)
    db = ProjectionDB(store_location(consumer_url))
    projector = StreamProjector(db, STREAM, snapshot_every=5)
    head = projector.open()
    assert head.position == deliveries[half - 1].envelope.position
    assert dump_projections(db) == expected
    with db.read() as tx:
        assert set(tx.tracking(PROJECTIONS).values()) == {head.position}
    assert projector.apply_batch(deliveries[half:]).applied == len(deliveries) - half
    db.close()
