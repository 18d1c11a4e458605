"""Messaging commands: `relay` (store -> JetStream), `subscribe` (a durable or ephemeral
consumer) and `project --from-nats` (read models from the stream, into the consumer's
own store)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import click

from homeledger.adapters.consumer import ConsumerSpec, Delivery, consume
from homeledger.adapters.errors import NatsUnavailableError, StoreUnavailableError
from homeledger.adapters.nats_stream import (
    DEFAULT_DUPLICATE_WINDOW,
    DEFAULT_REPLICAS,
    StreamSpec,
    create_stream,
)
from homeledger.adapters.relay import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW,
    Progress,
    Relay,
    RelayOptions,
    RelayStats,
)
from homeledger.adapters.settings import redact_url, store_location
from homeledger.adapters.store import LedgerStore
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import DAY, InputError, Seconds, positions, run_until_signal
from homeledger.cli.progress import Progress as Bar
from homeledger.cli.progress import RelayProgress
from homeledger.cli.render import EventPrinter, emit_object
from homeledger.projections.consumer_store import LastApplied
from homeledger.projections.stream_projector import StreamProjector, project_stream

ONCE_MAX_OUTAGE = 120.0
# `project`'s batch: catching up (--once), larger batches mean fewer commits and round
# trips; following, a fetch holds what arrives until its batch is full or a second has
# passed, so a smaller batch keeps a live consumer's latency low.
ONCE_BATCH, FOLLOW_BATCH = 1000, 200
LEDGER_POLL = 1.0  # seconds between looks for a ledger that is not initialised yet


def _outage(max_outage: float | None, once: bool) -> float | None:
    """Seconds without progress before exit 4: as given, else a bound only for --once."""
    if max_outage is not None:
        return max_outage
    return ONCE_MAX_OUTAGE if once else None


def report(line: str) -> None:
    click.echo(f"homeledger: {line}", err=True)


# relay


@click.command("relay")
@click.option("--once", is_flag=True, help="Publish the backlog, then exit.")
@click.option("--window", type=click.IntRange(1, 4000), default=DEFAULT_WINDOW,
              show_default=True, help="Messages in flight before awaiting their acks.")
@click.option("--ack-timeout", type=Seconds(0.1, 3600), default=DEFAULT_ACK_TIMEOUT,
              show_default=True, help="Seconds to wait for a window's acknowledgements.")
@click.option("--poll-interval", type=Seconds(0.01, 3600),
              default=DEFAULT_POLL_INTERVAL, show_default=True,
              help="Seconds between looks at the store when following.")
@click.option("--duplicate-window", type=Seconds(1, 365 * DAY),
              default=DEFAULT_DUPLICATE_WINDOW, show_default=True,
              envvar="HOMELEDGER_NATS_DUPLICATE_WINDOW",
              help="Stream de-duplication window, seconds.")
@click.option("--replicas", type=click.IntRange(1, 5), default=DEFAULT_REPLICAS,
              show_default=True, envvar="HOMELEDGER_NATS_REPLICAS",
              help="Stream replicas (3 on a 3-node cluster).")
@click.option("--max-outage", type=Seconds(0, 365 * DAY),
              help="Exit 4 after this many seconds without progress "
                   f"(default: {ONCE_MAX_OUTAGE:g} with --once, never otherwise).")
@pass_context
def relay(ctx: Context, once: bool, window: int, ack_timeout: float, poll_interval: float,
          duplicate_window: float, replicas: int, max_outage: float | None) -> None:  # fmt: skip
    """Publish stored events to JetStream in store order, exactly once."""
    options = RelayOptions(
        window=window, ack_timeout=ack_timeout, poll_interval=poll_interval,
        max_outage=_outage(max_outage, once),
        stream=StreamSpec(ctx.settings.stream, duplicate_window, replicas,
                          prefix=ctx.settings.subject_prefix),
    )  # fmt: skip
    follows = None if once else (f"{store_location(ctx.settings.store).display}, publishing to "
                                 f"stream {ctx.settings.stream} on "
                                 f"{redact_url(ctx.settings.nats_url)}")  # fmt: skip
    progress: Progress = RelayProgress(follow=follows)
    store = ctx.services.store() if once else _await_ledger(ctx, options)
    stats = RelayStats()
    if store is not None:
        worker = Relay(store, ctx.settings, options, report=report, progress=progress)
        stats = run_until_signal(lambda stop: worker.run(once=once, stop=stop))
    result = {"stream": ctx.settings.stream, "published": stats.published,
              "duplicates": stats.duplicates, "position": stats.position}  # fmt: skip
    if ctx.fmt == "table":
        click.echo(f"relayed {stats.published} events to {ctx.settings.stream} "
                   f"({stats.duplicates} already there); the relay's position is "
                   f"{stats.position}")  # fmt: skip
    else:
        emit_object(result, ctx.fmt)


def _await_ledger(ctx: Context, options: RelayOptions) -> LedgerStore | None:
    """The store for a following relay. On a deployment's first start there is no ledger
    yet: the relay creates the stream at once (so readers find it) and waits for
    `homeledger init` instead of failing; None if stopped first. --max-outage bounds
    the wait (exit 4)."""
    try:
        return ctx.services.store()
    except StoreUnavailableError as missing:
        report(f"waiting for the ledger ({missing}): run 'homeledger init'")

    async def wait(stop: asyncio.Event) -> LedgerStore | None:
        if options.stream is not None:
            try:
                await create_stream(ctx.settings, options.stream)
            except NatsUnavailableError as exc:  # the relay itself retries later
                report(f"the stream is not created yet: {exc}")
        started = time.monotonic()
        while not stop.is_set():
            try:
                return ctx.services.store()
            except StoreUnavailableError:
                if options.max_outage is not None \
                        and time.monotonic() - started > options.max_outage:  # fmt: skip
                    raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEDGER_POLL)
        return None

    return run_until_signal(wait)  # type: ignore[no-any-return]


# subscribe


@click.command("subscribe")
@click.option("--durable",
              help="Durable consumer name: resumes where it acknowledged. Without it, an "
                   "ephemeral consumer that is deleted on exit.")
@click.option("--subject",
              help="Subject filter, e.g. 'homeledger.events.*.gw-bissau-village' "
                   "(default: every event of the stream).")
@click.option("--from-position", type=positions(1),
              help="Start at this store position (when the consumer is created).")
@click.option("--max", "max_messages", type=positions(1),
              help="Exit after this many events.")
@click.option("--idle", type=Seconds(0.1),
              help="Exit after this many seconds without a new event.")
@click.option("--ack-wait", type=Seconds(1), default=30.0, show_default=True,
              help="Seconds before an unacknowledged event is delivered again.")
@click.option("--batch", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Events fetched per request.")
@pass_context
def subscribe(ctx: Context, durable: str | None, subject: str | None,
              from_position: int | None, max_messages: int | None, idle: float | None,
              ack_wait: float, batch: int) -> None:  # fmt: skip
    """Print events from the stream, acknowledging each after printing.

    With --durable the consumer stays on the server and the next run resumes after the
    last event acknowledged; without it the consumer is ephemeral: it starts at the
    beginning (or --from-position) and is deleted when the command exits.
    """
    spec = ConsumerSpec(durable=durable, subject=subject, from_position=from_position,
                        ack_wait=ack_wait, batch=batch, max_ack_pending=max(batch * 2, 100),
                        prefix=ctx.settings.subject_prefix)  # fmt: skip
    spec.check()  # bad names and filters before anything is printed
    printer = EventPrinter(ctx.fmt)
    started = False

    def begin() -> None:  # the header only once the consumer is set up
        nonlocal started
        if not started:
            printer.start()
            started = True


    def handle(delivery: Delivery) -> None:
        if not started and max_messages is None and idle is None:  # a follower: say what
            following(f"stream {ctx.settings.stream} on {redact_url(ctx.settings.nats_url)}"
                      f"{f' (subject {subject})' if subject else ''} with "
                      f"{f'durable consumer {durable}' if durable else 'an ephemeral consumer'}"
                      f", from position {delivery.envelope.position}")  # fmt: skip
        begin()
        printer.event(delivery.envelope)
        printer.flush()  # printed before it is acknowledged

    try:
        run_until_signal(
            lambda stop: consume(ctx.settings, spec, handle, max_messages=max_messages,
                                 idle=idle, stop=stop, report=report)
        )  # fmt: skip
        begin()
    finally:
        if started:
            printer.finish()


# project


@click.command("project")
@click.option("--from-nats", is_flag=True, help="Build from the NATS stream (the only source).")
@click.option("--durable", required=True, help="Durable consumer name: resumes where it acked.")
@click.option("--once", is_flag=True, help="Apply what the stream holds now, then exit.")
@click.option("--ack-wait", type=Seconds(1), default=30.0, show_default=True,
              help="Seconds before an unacknowledged event is delivered again.")
@click.option("--batch", type=click.IntRange(1, 1000),
              help=f"Events fetched and committed per transaction (default: {ONCE_BATCH} "
                   f"with --once, {FOLLOW_BATCH} otherwise).")  # fmt: skip
@click.option("--max-outage", type=Seconds(0, 365 * DAY),
              help="Exit 4 after this many seconds without NATS "
                   f"(default: {ONCE_MAX_OUTAGE:g} with --once, never otherwise).")
@pass_context
def project(ctx: Context, from_nats: bool, durable: str, once: bool, ack_wait: float,
            batch: int | None, max_outage: float | None) -> None:  # fmt: skip
    """Build balances, audit trails, portfolio and postings from the stream alone.

    They go to the database of the global --store, which must not hold a ledger's
    events; read them there with `balances`, `audit`, `portfolio`, `trial-balance` and
    `report`. Each batch is committed with the position reached, then acknowledged;
    redelivered events change nothing, and an event that does not continue the hash
    chain, or breaks a rule of the ledger, is refused (exit 1).
    """
    if not from_nats:
        raise InputError("project builds from NATS only: give --from-nats")
    batch = batch or (ONCE_BATCH if once else FOLLOW_BATCH)
    spec = ConsumerSpec(durable=durable, ack_wait=ack_wait, batch=batch,
                        max_ack_pending=max(batch * 2, 100),
                        prefix=ctx.settings.subject_prefix)  # fmt: skip
    spec.check()
    projector = StreamProjector(ctx.services.projection_db(), ctx.settings.stream)
    outage = _outage(max_outage, once)
    with Bar("projecting") as bar:
        _instrument(projector, bar, None if once else
                    f"stream {ctx.settings.stream} on {redact_url(ctx.settings.nats_url)} "
                    f"with durable consumer {durable}")  # fmt: skip
        stats = run_until_signal(
            lambda stop: project_stream(ctx.settings, projector, spec, once=once, stop=stop,
                                        max_outage=outage, report=report)
        )  # fmt: skip
    last = stats.last or LastApplied(ctx.settings.stream)
    result = {"stream": ctx.settings.stream, "durable": durable, "applied": stats.applied,
              "redelivered_unchanged": stats.duplicates, "events": last.events,
              "position": last.position, "stream_seq": last.stream_seq,
              "head_hash": last.hash}  # fmt: skip
    if ctx.fmt == "table":
        click.echo(f"projected {stats.applied} events from {ctx.settings.stream} "
                   f"({stats.duplicates} redelivered, unchanged); the consumer store holds "
                   f"{last.events} events up to position {last.position} "
                   f"(stream sequence {last.stream_seq})")  # fmt: skip
    else:
        emit_object(result, ctx.fmt)


def _instrument(projector: StreamProjector, bar: Bar, follows: str | None) -> None:
    """Progress of the projector's batches; a follower's start line with its first batch
    (what it follows, after which position)."""
    applied = projector.apply_batch
    said = follows is None

    def apply_and_count(deliveries: list[Delivery]) -> Any:
        nonlocal said
        if not said:  # once NATS answered: an unreachable server stays a one-line error
            following(f"{follows}, after position {projector.last.position} (the consumer "
                      f"store holds {projector.last.events} events)")  # fmt: skip
            said = True
        result = applied(deliveries)
        bar.advance(len(deliveries))
        return result

    setattr(projector, "apply_batch", apply_and_count)  # noqa: B010 - this one object


def following(what: str) -> None:
    """A follower's start line on stderr: what it follows, from where."""
    click.echo(f"homeledger: following {what} (Ctrl-C to stop)", err=True)


def register(group: click.Group) -> None:
    """Adds the messaging commands to the CLI."""
    group.add_command(relay)
    group.add_command(subscribe)
    group.add_command(project)
