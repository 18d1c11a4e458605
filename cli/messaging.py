"""Messaging commands: `relay` (store -> JetStream), `subscribe` (a durable consumer) and
`project --from-nats` (read models from the stream, into the consumer's own store).

`demo` and `verify --against-nats` build on the same pieces: `run_projector` is what
`project` runs, `stream_checks` reads the stream as the store's witness, `consume_events`
runs the durable consumer loop with any handler, and `nats_failures` maps NATS errors to
exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import click

from homeledger.adapters.consumer import (
    ConsumerConfigError,
    ConsumerSpec,
    ConsumeStats,
    Delivery,
    Handler,
    UnreadableMessageError,
    consume,
)
from homeledger.adapters.envelope import ENVELOPE_FIELDS, Envelope
from homeledger.adapters.publisher import (
    DEFAULT_DUPLICATE_WINDOW,
    DEFAULT_REPLICAS,
    STREAM_SUBJECTS,
    NatsUnavailableError,
    StreamConfigError,
    StreamSpec,
)
from homeledger.adapters.relay import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW,
    NoProgress,
    Progress,
    Relay,
    RelayOptions,
    StreamDisagreesError,
)
from homeledger.adapters.settings import Settings, store_location
from homeledger.adapters.store import LedgerStore
from homeledger.adapters.stream_reader import walk_stream
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import FINDING, Failure, InputError, Unreachable
from homeledger.cli.render import emit_object, summary
from homeledger.projections.db import ProjectionDB
from homeledger.projections.stream import (
    NotAConsumerStoreError,
    ProjectStats,
    StreamHead,
    StreamIntegrityError,
    StreamProjector,
    project_stream,
)
from homeledger.projections.stream_check import StreamWitness
from homeledger.projections.verify import Check

PROGRESS_FROM = 2000  # backlog size from which a TTY gets a progress bar
ONCE_MAX_OUTAGE = 120.0


def _outage(max_outage: float | None, once: bool) -> float | None:
    """Seconds without progress before exit 4: as given, else a bound only for --once."""
    if max_outage is not None:
        return max_outage
    return ONCE_MAX_OUTAGE if once else None


def report(line: str) -> None:
    click.echo(f"homeledger: {line}", err=True)


@contextlib.contextmanager
def nats_failures() -> Iterator[None]:
    """NATS and consumer failures as the CLI's classified one-line errors."""
    # asyncio logs a warning for every TLS connection that nats-py closes.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    try:
        yield
    except NatsUnavailableError as exc:
        raise Unreachable(str(exc)) from None
    except UnreadableMessageError as exc:
        raise Unreachable(str(exc)) from None
    except (StreamConfigError, ConsumerConfigError) as exc:
        raise InputError(str(exc)) from None
    except StreamDisagreesError as exc:
        raise Failure(FINDING, str(exc)) from None


def run_until_signal(main: Callable[[asyncio.Event], Any]) -> Any:
    """Run a coroutine factory; SIGTERM and SIGINT ask it to stop between batches."""

    async def runner() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())


# relay


class BarProgress:
    """A progress bar on stderr for a large backlog (only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def start(self, backlog: int) -> None:
        if backlog >= PROGRESS_FROM:
            bar: Any = click.progressbar(length=backlog, label="relaying", file=sys.stderr)
            self.bar = bar.__enter__()

    def advance(self, published: int) -> None:
        if self.bar is not None:
            self.bar.update(published)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("relay")
@click.option("--once", is_flag=True, help="Publish the backlog, then exit.")
@click.option("--window", type=click.IntRange(1, 4000), default=DEFAULT_WINDOW,
              show_default=True, help="Messages in flight before awaiting their acks.")
@click.option("--ack-timeout", type=click.FloatRange(min=0.1), default=DEFAULT_ACK_TIMEOUT,
              show_default=True, help="Seconds to wait for a window's acknowledgements.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01),
              default=DEFAULT_POLL_INTERVAL, show_default=True,
              help="Seconds between looks at the store when following.")
@click.option("--duplicate-window", type=click.FloatRange(min=1),
              default=DEFAULT_DUPLICATE_WINDOW, show_default=True,
              envvar="HOMELEDGER_NATS_DUPLICATE_WINDOW",
              help="Stream de-duplication window, seconds.")
@click.option("--replicas", type=click.IntRange(1, 5), default=DEFAULT_REPLICAS,
              show_default=True, envvar="HOMELEDGER_NATS_REPLICAS",
              help="Stream replicas (3 on a 3-node cluster).")
@click.option("--max-outage", type=click.FloatRange(min=0),
              help="Exit 4 after this many seconds without progress "
                   f"(default: {ONCE_MAX_OUTAGE:g} with --once, never otherwise).")
@pass_context
def relay(ctx: Context, once: bool, window: int, ack_timeout: float, poll_interval: float,
          duplicate_window: float, replicas: int, max_outage: float | None) -> None:  # fmt: skip
    """Publish stored events to JetStream in store order, exactly once."""
    options = RelayOptions(
        window=window, ack_timeout=ack_timeout, poll_interval=poll_interval,
        max_outage=_outage(max_outage, once),
        stream=StreamSpec(ctx.settings.stream, duplicate_window, replicas),
    )  # fmt: skip
    progress: Progress = BarProgress() if sys.stderr.isatty() else NoProgress()
    worker = Relay(ctx.store(), ctx.settings, options, report=report, progress=progress)
    with nats_failures():
        stats = run_until_signal(lambda stop: worker.run(once=once, stop=stop))
    result = {"stream": ctx.settings.stream, "published": stats.published,
              "duplicates": stats.duplicates, "checkpoint": stats.checkpoint}  # fmt: skip
    if ctx.fmt == "table":
        click.echo(f"relayed {stats.published} events to {ctx.settings.stream} "
                   f"({stats.duplicates} already there); checkpoint at position "
                   f"{stats.checkpoint}")  # fmt: skip
    else:
        emit_object(result, ctx.fmt)


# subscribe


class EventPrinter:
    """Prints events one by one as they arrive, in the chosen format."""

    TABLE = "{position:>9}  {recorded_at:<27}  {type:<22}  {scope:<20}  {amount:>14}  {detail}"

    def __init__(self, fmt: str, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out
        self.count = 0

    def _echo(self, text: str, nl: bool = True) -> None:
        click.echo(text, nl=nl, file=self.out)

    def start(self) -> None:
        if self.fmt == "table":
            self._echo(self.TABLE.format(position="POSITION", recorded_at="RECORDED AT",
                                         type="TYPE", scope="SCOPE", amount="AMOUNT",
                                         detail="DETAIL").rstrip())  # fmt: skip
        elif self.fmt == "csv":
            self._echo(",".join(ENVELOPE_FIELDS))
        elif self.fmt == "json":
            self._echo("[", nl=False)

    def event(self, envelope: Envelope) -> None:
        if self.fmt == "table":
            row = {k: ("" if v is None else v) for k, v in summary(envelope).items()}
            self._echo(self.TABLE.format(**row).rstrip())
        elif self.fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="")
            writer.writerow([_csv_cell(v) for v in envelope.to_dict().values()])
            self._echo(buffer.getvalue())
        else:
            text = json.dumps(envelope.to_dict(), separators=(",", ":"))
            if self.fmt == "json":
                self._echo(("," if self.count else "") + text, nl=False)
            else:
                self._echo(text)
        self.count += 1

    def finish(self) -> None:
        if self.fmt == "json":
            self._echo("]")


def _csv_cell(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)


def consume_events(ctx: Context, spec: ConsumerSpec, handler: Handler, *,
                   max_messages: int | None = None, idle: float | None = None,
                   max_outage: float | None = None) -> ConsumeStats:  # fmt: skip
    """Run the durable consumer loop with `handler` (acknowledging after it returns)."""
    with nats_failures():
        result: ConsumeStats = run_until_signal(
            lambda stop: consume(ctx.settings, spec, handler, max_messages=max_messages,
                                 idle=idle, stop=stop, max_outage=max_outage, report=report)
        )  # fmt: skip
    return result


@click.command("subscribe")
@click.option("--durable", required=True, help="Durable consumer name: resumes where it acked.")
@click.option("--subject", default=STREAM_SUBJECTS, show_default=True,
              help="Subject filter, e.g. 'homeledger.events.*.gw-bissau-village'.")
@click.option("--from-position", type=click.IntRange(min=1),
              help="Start at this store position (when the durable is created).")
@click.option("--max", "max_messages", type=click.IntRange(min=1),
              help="Exit after this many events.")
@click.option("--idle", type=click.FloatRange(min=0.1),
              help="Exit after this many seconds without a new event.")
@click.option("--ack-wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds before an unacknowledged event is delivered again.")
@click.option("--batch", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Events fetched per request.")
@pass_context
def subscribe(ctx: Context, durable: str, subject: str, from_position: int | None,
              max_messages: int | None, idle: float | None, ack_wait: float,
              batch: int) -> None:  # fmt: skip
    """Print events from a durable JetStream consumer, acknowledging each after printing."""
    spec = ConsumerSpec(durable=durable, subject=subject, from_position=from_position,
                        ack_wait=ack_wait, batch=batch,
                        max_ack_pending=max(batch * 2, 100))  # fmt: skip
    printer = EventPrinter(ctx.fmt)
    started = False

    def begin() -> None:  # the header only once the consumer is set up
        nonlocal started
        if not started:
            printer.start()
            started = True

    def handle(delivery: Delivery) -> None:
        begin()
        printer.event(delivery.envelope)

    try:
        consume_events(ctx, spec, handle, max_messages=max_messages, idle=idle)
        begin()
    finally:
        if started:
            printer.finish()


# project


def open_consumer_store(settings: Settings) -> ProjectionDB:
    """The consumer's own database (created if it is an SQLite file that is not there)."""
    db = ProjectionDB(store_location(settings.store))
    click.get_current_context().call_on_close(db.close)
    return db


def run_projector(settings: Settings, db: ProjectionDB, spec: ConsumerSpec, *, once: bool,
                  max_outage: float | None = None) -> ProjectStats:  # fmt: skip
    """`project --from-nats`: the stream into the consumer store; exit 1 on a bad stream."""
    projector = StreamProjector(db, settings.stream)
    try:
        with nats_failures():
            stats: ProjectStats = run_until_signal(
                lambda stop: project_stream(settings, projector, spec, once=once, stop=stop,
                                            max_outage=max_outage, report=report)
            )  # fmt: skip
    except StreamIntegrityError as exc:
        raise Failure(FINDING, f"refused to project: {exc}") from None
    except NotAConsumerStoreError as exc:
        raise InputError(str(exc)) from None
    return stats


@click.command("project")
@click.option("--from-nats", is_flag=True, help="Build from the NATS stream (the only source).")
@click.option("--durable", required=True, help="Durable consumer name: resumes where it acked.")
@click.option("--once", is_flag=True, help="Apply what the stream holds now, then exit.")
@click.option("--ack-wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds before an unacknowledged event is delivered again.")
@click.option("--batch", type=click.IntRange(1, 1000), default=200, show_default=True,
              help="Events fetched and committed per transaction.")
@click.option("--max-outage", type=click.FloatRange(min=0),
              help="Exit 4 after this many seconds without NATS "
                   f"(default: {ONCE_MAX_OUTAGE:g} with --once, never otherwise).")
@pass_context
def project(ctx: Context, from_nats: bool, durable: str, once: bool, ack_wait: float,
            batch: int, max_outage: float | None) -> None:  # fmt: skip
    """Build balances, audit trails, portfolio and postings from the stream alone.

    They go to the database of the global --store, which must not hold a ledger's
    events; read them there with `balances`, `audit`, `portfolio`, `trial-balance` and
    `report`. Each batch is committed with the position reached, then acknowledged;
    redelivered events change nothing, and an event that does not continue the hash
    chain is refused (exit 1).
    """
    if not from_nats:
        raise InputError("project builds from NATS only: give --from-nats")
    spec = ConsumerSpec(durable=durable, ack_wait=ack_wait, batch=batch,
                        max_ack_pending=max(batch * 2, 100))  # fmt: skip
    spec.check()
    db = open_consumer_store(ctx.settings)
    outage = _outage(max_outage, once)
    stats = run_projector(ctx.settings, db, spec, once=once, max_outage=outage)
    head = stats.head or StreamHead(ctx.settings.stream)
    result = {"stream": ctx.settings.stream, "durable": durable, "applied": stats.applied,
              "redelivered_unchanged": stats.duplicates, "events": head.events,
              "position": head.position, "stream_seq": head.stream_seq,
              "head_hash": head.hash}  # fmt: skip
    if ctx.fmt == "table":
        click.echo(f"projected {stats.applied} events from {ctx.settings.stream} "
                   f"({stats.duplicates} redelivered, unchanged); the consumer store holds "
                   f"{head.events} events up to position {head.position} "
                   f"(stream sequence {head.stream_seq})")  # fmt: skip
    else:
        emit_object(result, ctx.fmt)


# verify --against-nats


def stream_checks(settings: Settings, store: LedgerStore, db: ProjectionDB,
                  head: int) -> list[Check]:  # fmt: skip
    """The stream as a witness of the store (exit 4 when NATS cannot be read)."""
    witness = StreamWitness(store, db, head)
    with nats_failures():
        asyncio.run(walk_stream(settings, witness.feed))
    return witness.finish()


def register(group: click.Group) -> None:
    """Adds the messaging commands to the CLI."""
    group.add_command(relay)
    group.add_command(subscribe)
    group.add_command(project)
