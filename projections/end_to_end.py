"""The reference case end to end, on the embedded defaults: what `homeledger demo` runs.

In a folder of its own: an SQLite store, a nats-server from the bundled binary on a
free loopback port (its JetStream store in the folder too), the reference case
recorded and sealed, relayed to the stream, and a consumer-side store built from the
stream alone by the code of `project --from-nats`. Both sides' balances are compared,
and the store is verified, also against the stream (`verify --against-nats`).

The stores are built by the caller's wiring (`Wiring`: the CLI's bootstrap), as for
every other command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.consumer import ConsumerSpec
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.relay import Relay, RelayOptions
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.domain import reference_case
from homeledger.projections.as_of import PointInTime
from homeledger.projections.balances import BalancesModel
from homeledger.projections.consumer_store import AppliedLog
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.stream_projector import StreamProjector, project_stream
from homeledger.projections.verify import verify
from homeledger.projections.witness import verify_against_stream

YEAR_FIGURES = ("pledged", "received", "outstanding", "allocated", "released", "unallocated")
COUNTRY_FIGURES = ("allocated", "released", "disbursed")
DURABLE = "demo-projector"
MAX_OUTAGE = 30.0
Say = Callable[[str], None]


@dataclass(frozen=True)
class Wiring:
    """How to build the application and a read-model database from settings."""

    application: Callable[[Settings], LedgerApplication]
    projection_db: Callable[[Settings], ProjectionDB]


@dataclass
class Sides:
    """What each side reads: the store's projections and the consumer's."""

    store: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stream: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def differing(self) -> list[str]:
        return [by for by in self.store if self.store[by] != self.stream.get(by)]


def run(settings: Settings, folder: Path, say: Say, wiring: Wiring) -> dict[str, Any]:
    """Record, relay, project and compare in `folder`; the result, for printing.

    NatsServerError when the server cannot start; StreamIntegrityError when the stream
    does not continue the chain. The server is stopped in every case.
    """
    store_path, consumer_path = folder / "homeledger.db", folder / "consumer.db"
    settings = settings.model_copy(
        update={"store": f"sqlite:///{store_path}", "actor": settings.actor or "demo"}
    )
    server = NatsServer(folder / "nats", name="homeledger-demo",
                        binary=settings.nats_server_bin).start()  # fmt: skip
    try:
        say(f"nats-server {server.url} (pid {server.pid}), JetStream store in "
            f"{server.store_dir}")  # fmt: skip
        settings = settings.model_copy(update={"nats_url": server.url})
        consumer = settings.model_copy(update={"store": f"sqlite:///{consumer_path}"})
        return _run(settings, consumer, say, wiring)
    finally:
        server.stop()


def _run(settings: Settings, consumer: Settings, say: Say, wiring: Wiring) -> dict[str, Any]:
    app = wiring.application(settings)
    try:
        recorded = _record(app)
        say(f"recorded {recorded} facts of the reference case (sealed) in {settings.store}")
        published = _relay(app.store, settings)
        say(f"relayed {published} events to stream {settings.stream}")
        cdb = wiring.projection_db(consumer)
        try:
            applied = _project(consumer, cdb, say)
            say(f"projected {applied} events from the stream into {consumer.store}")
            sdb = wiring.projection_db(settings)
            try:
                return _compare(app.store, sdb, cdb, settings, consumer, recorded)
            finally:
                sdb.close()
        finally:
            cdb.close()
    finally:
        app.store.close()


def _record(app: LedgerApplication) -> int:
    recorded = 0
    for command in reference_case.commands():
        recorded += len(app.execute(command))
    return recorded + len(app.seal())


def _relay(store: LedgerStore, settings: Settings) -> int:
    worker = Relay(store, settings, RelayOptions(max_outage=MAX_OUTAGE))
    return asyncio.run(worker.run(once=True)).published


def _project(settings: Settings, db: ProjectionDB, say: Say) -> int:
    """What `project --from-nats --durable demo-projector --once` does."""
    projector = StreamProjector(db, settings.stream)
    spec = ConsumerSpec(durable=DURABLE, batch=200, max_ack_pending=400)
    stats = asyncio.run(project_stream(settings, projector, spec, once=True,
                                       max_outage=MAX_OUTAGE, report=say))  # fmt: skip
    return stats.applied


def _compare(store: LedgerStore, sdb: ProjectionDB, cdb: ProjectionDB, settings: Settings,
             consumer: Settings, recorded: int) -> dict[str, Any]:  # fmt: skip
    report = verify(store, sdb, ProjectionRunner(store, sdb))
    report.checks += asyncio.run(verify_against_stream(settings, store, sdb, report.head,
                                                      report.replayed))
    sides = Sides(_balances(PointInTime(store, sdb), report.head))
    consumer_reader = PointInTime(AppliedLog(cdb), cdb)
    sides.stream = _balances(consumer_reader, consumer_reader.projected_to())
    return {
        "store": settings.store, "consumer_store": consumer.store, "nats": settings.nats_url,
        "stream": settings.stream, "events": recorded, "position": report.head,
        "years": _side_by_side(sides, "year", YEAR_FIGURES),
        "countries": _side_by_side(sides, "country", COUNTRY_FIGURES),
        "initiatives": len(sides.store["initiative"]),
        "differing": sides.differing(), "equal": not sides.differing(),
        "checks": [{"check": c.name, "ok": c.ok, "first_bad_position": c.position,
                    "detail": c.detail()} for c in report.checks],
        "verified": report.ok,
        "first_bad_position": report.first_bad_position,
    }  # fmt: skip


def _balances(reader: PointInTime, position: int) -> dict[str, list[dict[str, Any]]]:
    model: BalancesModel = reader.balances(position)
    return {by: model.rows(by) for by in ("year", "initiative", "country")}


def _side_by_side(sides: Sides, by: str, figures: tuple[str, ...]) -> list[dict[str, Any]]:
    stream_rows = {row[by]: row for row in sides.stream.get(by, [])}
    rows = []
    for row in sides.store[by]:
        other = stream_rows.get(row[by], {})
        rows.append({
            by: row[by],
            "store": {f: row.get(f) for f in figures},
            "stream": {f: other.get(f) for f in figures},
            "equal": row == other,
        })  # fmt: skip
    return rows


__all__ = ["COUNTRY_FIGURES", "YEAR_FIGURES", "Wiring", "run"]
