"""`homeledger demo`: the reference case end to end on the embedded defaults.

In a fresh folder (given, or a new temporary one): an SQLite store, a nats-server from
the bundled binary on a free loopback port (its JetStream store in the folder too), the
reference case recorded and sealed, relayed to the stream, and a consumer-side store
built from the stream alone by the code of `project --from-nats`. Both sides' balances
are printed side by side and compared, and the store is verified against the stream
(`verify --against-nats`). Exit 1 when anything differs. The server is stopped in every
case, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import click

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.bootstrap import build_application
from homeledger.adapters.consumer import ConsumerSpec
from homeledger.adapters.nats_server import NatsServer, NatsServerError
from homeledger.adapters.relay import Relay, RelayOptions
from homeledger.adapters.settings import Settings, store_location
from homeledger.adapters.store import LedgerStore
from homeledger.cli import reference_case
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import BAD_INPUT, FINDING, UNREACHABLE, Failure
from homeledger.cli.messaging import nats_failures, stream_checks
from homeledger.cli.render import emit_object, emit_rows
from homeledger.projections.as_of import PointInTime
from homeledger.projections.balances import BalancesModel
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.stream import (
    StreamIntegrityError,
    StreamLog,
    StreamProjector,
    project_stream,
)
from homeledger.projections.verify import Check
from homeledger.projections.verify import verify as run_verify

YEAR_FIGURES = ("pledged", "received", "outstanding", "allocated", "released", "unallocated")
COUNTRY_FIGURES = ("allocated", "released", "disbursed")
DURABLE = "demo-projector"
MAX_OUTAGE = 30.0


@dataclass
class Sides:
    """What each side reads: the store's projections and the consumer's."""

    store: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stream: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def differing(self) -> list[str]:
        return [by for by in self.store if self.store[by] != self.stream.get(by)]


def say(line: str) -> None:
    click.echo(f"demo: {line}", err=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that the server is stopped on the way out."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(file_okay=False),
              help="Folder for the demo's stores and NATS server (default: a new temporary "
                   "folder).")  # fmt: skip
@pass_context
def demo(ctx: Context, folder: str | None) -> None:
    """The reference case end to end: record, relay to NATS, project, compare.

    Records "A Home for a Home" on a fresh SQLite store, publishes it to a NATS server
    started from the bundled binary, builds a second store from the stream alone, prints
    both sides' balances side by side, and exits 1 if they differ or verify finds a
    problem.
    """
    started = time.monotonic()
    base = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="homeledger-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    store_path, consumer_path = base / "homeledger.db", base / "consumer.db"
    for path in (store_path, consumer_path, base / "nats"):
        if path.exists():
            raise Failure(BAD_INPUT, f"{path} already exists: give an empty --dir")
    settings = ctx.settings.model_copy(
        update={"store": f"sqlite:///{store_path}", "actor": ctx.settings.actor or "demo"}
    )
    with _sigterm_as_interrupt():
        server = _start_server(base / "nats")
        try:
            say(f"nats-server {server.url} (pid {server.pid}), JetStream store in "
                f"{server.store_dir}")  # fmt: skip
            nats = settings.model_copy(update={"nats_url": server.url})
            result = _run(nats, consumer_path)
        finally:
            server.stop()
    result["seconds"] = round(time.monotonic() - started, 2)
    _print(result, ctx.fmt)
    if not result["equal"] or not result["verified"]:
        raise Failure(FINDING, _failure_line(result))


def _start_server(folder: Path) -> NatsServer:
    try:
        return NatsServer(folder, name="homeledger-demo").start()
    except NatsServerError as exc:
        raise Failure(UNREACHABLE, f"cannot start nats-server: {exc}") from None


def _run(settings: Settings, consumer_path: Path) -> dict[str, Any]:
    app = build_application(settings)
    try:
        recorded = _record(app)
        say(f"recorded {recorded} facts of the reference case (sealed) in {settings.store}")
        published = _relay(app.store, settings)
        say(f"relayed {published} events to stream {settings.stream}")
        consumer = settings.model_copy(update={"store": f"sqlite:///{consumer_path}"})
        cdb = ProjectionDB(store_location(consumer.store))
        try:
            applied = _project(consumer, cdb)
            say(f"projected {applied} events from the stream into {consumer.store}")
            return _compare(app.store, cdb, settings, consumer, recorded)
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
    worker = Relay(store, settings, RelayOptions(max_outage=MAX_OUTAGE), report=say)
    with nats_failures():
        stats = asyncio.run(worker.run(once=True))
    return stats.published


def _project(settings: Settings, db: ProjectionDB) -> int:
    """What `project --from-nats --durable demo-projector --once` does."""
    projector = StreamProjector(db, settings.stream)
    spec = ConsumerSpec(durable=DURABLE, batch=200, max_ack_pending=400)
    try:
        with nats_failures():
            stats = asyncio.run(project_stream(settings, projector, spec, once=True,
                                               max_outage=MAX_OUTAGE, report=say))  # fmt: skip
    except StreamIntegrityError as exc:
        raise Failure(FINDING, f"refused to project: {exc}") from None
    return stats.applied


def _compare(store: LedgerStore, cdb: ProjectionDB, settings: Settings, consumer: Settings,
             recorded: int) -> dict[str, Any]:  # fmt: skip
    sdb = ProjectionDB(store.location)
    try:
        runner = ProjectionRunner(store, sdb)
        report = run_verify(store, sdb, runner)
        checks = [*report.checks, *stream_checks(settings, store, sdb, report.head)]
        sides = Sides(_balances(PointInTime(store, sdb), report.head))
    finally:
        sdb.close()
    log = cast(LedgerStore, StreamLog(cdb))  # the consumer's applied envelopes
    consumer_reader = PointInTime(log, cdb)
    sides.stream = _balances(consumer_reader, consumer_reader.head())
    return {
        "store": settings.store, "consumer_store": consumer.store, "nats": settings.nats_url,
        "stream": settings.stream, "events": recorded, "position": report.head,
        "years": _side_by_side(sides, "year", YEAR_FIGURES),
        "countries": _side_by_side(sides, "country", COUNTRY_FIGURES),
        "initiatives": len(sides.store["initiative"]),
        "differing": sides.differing(), "equal": not sides.differing(),
        "checks": [{"check": c.name, "ok": c.ok, "first_bad_position": c.position,
                    "detail": c.detail()} for c in checks],
        "verified": all(c.ok for c in checks),
        "first_bad_position": _first_bad(checks),
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


def _first_bad(checks: list[Check]) -> int | None:
    positions = [c.position for c in checks if c.position is not None]
    return min(positions) if positions else None


def _failure_line(result: dict[str, Any]) -> str:
    if not result["equal"]:
        return f"store and stream balances differ (by {', '.join(result['differing'])})"
    failed = ", ".join(c["check"] for c in result["checks"] if not c["ok"])
    return f"verify found problems ({failed}); first bad position {result['first_bad_position']}"


def _print(result: dict[str, Any], fmt: str) -> None:
    if fmt != "table":
        emit_object(result, "json" if fmt == "csv" else fmt)
        return
    click.echo(f"Balances per year: the store ({result['store']}) and the consumer built "
               f"from stream {result['stream']} alone ({result['consumer_store']})")  # fmt: skip
    emit_rows(_flat(result["years"], "year", YEAR_FIGURES), ("year", "side", *YEAR_FIGURES),
              "table")  # fmt: skip
    click.echo(f"\nPer country of the {result['initiatives']} initiatives (the store's "
               "figures; 'stream' says whether the consumer's are the same):")  # fmt: skip
    emit_rows([{"country": row["country"], **row["store"],
                "stream": "same" if row["equal"] else "DIFFERENT"}
               for row in result["countries"]],
              ("country", *COUNTRY_FIGURES, "stream"), "table")  # fmt: skip
    click.echo()
    emit_rows([{"check": c["check"], "result": "ok" if c["ok"] else "FAILED",
                "detail": c["detail"]} for c in result["checks"]],
              ("check", "result", "detail"), "table")  # fmt: skip
    verdict = "EQUAL" if result["equal"] else "DIFFERENT"
    click.echo(f"\nstore and stream balances: {verdict} ({len(result['years'])} years, "
               f"{len(result['countries'])} countries, {result['initiatives']} initiatives, "
               f"{result['events']} events) in {result['seconds']}s")  # fmt: skip


def _flat(rows: list[dict[str, Any]], by: str, figures: tuple[str, ...]) -> list[dict[str, Any]]:
    flat = []
    for row in rows:
        for side in ("store", "stream"):
            flat.append({by: row[by] if side == "store" else "", "side": side,
                         **{f: row[side][f] for f in figures}})  # fmt: skip
    return flat


def register(group: click.Group) -> None:
    group.add_command(demo)
