"""Inspection: events list/show/stats/tail and the JSON Schemas."""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import click

from homeledger.adapters.envelope import Envelope, envelope_from_body, format_time
from homeledger.adapters.settings import redact_url, store_location
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import MAX_POSITION, InputError, Seconds, positions, run_until_signal
from homeledger.cli.render import EventPrinter, emit_envelopes, emit_object, emit_rows
from homeledger.domain.events import EVENTS, initiative_of

if TYPE_CHECKING:
    from homeledger.adapters.stream_reader import StreamRecord


def parse_time(text: str, flag: str) -> datetime:
    """An ISO 8601 time (or date); without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise InputError(f"{flag}: {text[:40]!r} is not an ISO 8601 time") from None
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC time there is
        raise InputError(f"{flag}: {text[:40]!r} is out of range in UTC") from None


def parse_date(text: str, flag: str) -> date:
    """A date, YYYY-MM-DD."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{flag}: {text[:40]!r} is not a date in the form YYYY-MM-DD") from None


def _check_types(types: tuple[str, ...]) -> None:
    for name in types:
        if name not in EVENTS:
            known = ", ".join(sorted(EVENTS.types()))
            raise InputError(f"--type: unknown event type {name!r} (known: {known})")


@click.group("events")
def events() -> None:
    """Inspect recorded events."""


@events.command("list")
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
@click.option("--initiative", help="Only facts of this initiative (and their reversals).")
@click.option("--from-position", type=positions(), default=1, show_default=True, metavar="N",
              help="The first store position to read.")
@click.option("--to-position", type=positions(), metavar="N",
              help="The last store position to read (default: the newest).")
@click.option("--since", help="Recorded at or after this time (ISO 8601).")
@click.option("--until", help="Recorded at or before this time (ISO 8601).")
@click.option("--from", "first", metavar="DATE", help="Effective on or after this date.")
@click.option("--to", "last", metavar="DATE", help="Effective on or before this date.")
@click.option("--limit", type=positions(), help="Only the first N that match.")
@click.option("--last", "last_n", type=positions(), metavar="N",
              help="Only the last N that match (still in store order).")  # fmt: skip
@pass_context
def list_(ctx: Context, types: tuple[str, ...], initiative: str | None, from_position: int,
          to_position: int | None, since: str | None, until: str | None, first: str | None,
          last: str | None, limit: int | None, last_n: int | None) -> None:  # fmt: skip
    """List events in store order, filtered. --since/--until filter on the recorded time,
    --from/--to on the effective date (each inclusive).

    Printed as they are read (any number of events in constant memory); the table has
    fixed columns, amounts with thousands separators.
    """
    _check_types(types)
    if limit is not None and last_n is not None:
        raise InputError("give --limit or --last, not both")
    lower = parse_time(since, "--since") if since else None
    upper = parse_time(until, "--until") if until else None
    earliest = parse_date(first, "--from") if first else None
    latest = parse_date(last, "--to") if last else None
    store = ctx.services.store()
    start = max(from_position, 1)
    filtered = initiative or lower or upper or earliest or latest or types
    if last_n is not None and not filtered:
        # Unfiltered, the last N facts are among the last N positions, unless positions
        # were skipped (rolled-back transactions): then read from the start.
        near = max(start, (to_position or store.max_position()) - last_n + 1)
        if sum(1 for _ in store.notifications(near, to_position)) >= last_n:
            start = near

    def matches(envelope: Envelope) -> bool:
        if initiative and initiative_of(envelope.fact) != initiative:
            return False
        if (lower and envelope.recorded_at < lower) or (upper and envelope.recorded_at > upper):
            return False
        on = envelope.effective_date
        return not ((earliest and on < earliest) or (latest and on > latest))

    def selected() -> Iterator[Envelope]:
        count = 0
        for envelope in store.envelopes(start, to_position, types):
            if limit is not None and count >= limit:
                return
            if matches(envelope):
                count += 1
                yield envelope

    chosen: Iterator[Envelope] = selected()
    if last_n is not None:
        chosen = iter(deque(chosen, maxlen=last_n))
    bounded = start > 1 or to_position is not None
    why = "no event matches the filters" if filtered or bounded else \
        "the ledger holds no events"  # fmt: skip
    emit_envelopes(chosen, ctx.fmt, empty=why)


@events.command("show")
@click.argument("ref", metavar="POSITION|EVENT-ID",
               help="The event's store position, or its event id (a UUID).")
@pass_context
def show(ctx: Context, ref: str) -> None:
    """Show one event by its position or event id."""
    store = ctx.services.store()
    found: Envelope | None = None
    if ref.isdigit():
        position = int(ref)
        if position <= MAX_POSITION:
            found = next(store.envelopes(position, position), None)
    else:
        found = next((e for e in store.envelopes() if e.event_id == ref.lower()), None)
    if found is None:
        raise InputError(f"no event at {ref!r}")
    if ctx.fmt == "table":
        emit_object(found.to_dict(), "table")
    else:
        emit_object(found.to_dict(), "json" if ctx.fmt == "json" else ctx.fmt)


@events.command("stats")
@pass_context
def stats(ctx: Context) -> None:
    """Counts per event type, positions, times and the chain head."""
    counts: Counter[str] = Counter()
    first: Envelope | None = None
    last: Envelope | None = None
    for envelope in ctx.services.store().envelopes():
        counts[envelope.type] += 1
        first = first or envelope
        last = envelope
    result: dict[str, Any] = {
        "events": sum(counts.values()),
        "first_position": first.position if first else None,
        "last_position": last.position if last else None,
        "first_recorded_at": format_time(first.recorded_at) if first else None,
        "last_recorded_at": format_time(last.recorded_at) if last else None,
        "version": last.aggregate_version if last else 0,
        "head_hash": last.hash if last else None,
        "by_type": {name: counts[name] for name in EVENTS.types() if counts[name]},
    }
    if ctx.fmt == "table":
        rows = [{"type": k, "events": v} for k, v in result["by_type"].items()]
        emit_object({k: v for k, v in result.items() if k != "by_type"}, "table")
        click.echo()
        emit_rows(rows, ("type", "events"), "table")
    else:
        emit_object(result, ctx.fmt)


def nats_configured() -> bool:
    """Whether --nats or HOMELEDGER_NATS_URL was given (not just the default)."""
    root = click.get_current_context().find_root()
    source = root.get_parameter_source("nats_url")
    return source not in (None, click.core.ParameterSource.DEFAULT)


@events.command("tail")
@click.option("--interval", type=Seconds(0.01, 3600), default=0.5, show_default=True,
              help="Seconds between polls of the store.")  # fmt: skip
@pass_context
def tail(ctx: Context, interval: float) -> None:
    """Follow new events as they are recorded (Ctrl-C to stop).

    From NATS (new messages on the stream) when --nats or HOMELEDGER_NATS_URL is
    given, else by polling the store.
    """
    printer = EventPrinter("jsonl" if ctx.fmt == "json" else ctx.fmt)  # a stream: lines
    if nats_configured():
        _tail_nats(ctx, printer)
        return
    store = ctx.services.store()
    position = store.max_position()
    following(f"new events of {store_location(ctx.settings.store).display} after position "
              f"{position}, polled every {interval:g}s")  # fmt: skip
    printer.start()
    try:
        while True:
            batch = list(store.envelopes(position + 1))
            for envelope in batch:
                printer.event(envelope)
                position = envelope.position
            printer.flush()
            if not batch:
                time.sleep(interval)
    except KeyboardInterrupt:
        printer.flush()
        return


def following(what: str) -> None:
    """A follower's start line on stderr: what it follows, from where."""
    click.echo(f"homeledger: following {what} (Ctrl-C to stop)", err=True)


def _tail_nats(ctx: Context, printer: EventPrinter) -> None:
    from homeledger.adapters.stream_reader import follow_stream

    said = False

    def show(records: list[StreamRecord]) -> None:
        nonlocal said
        for record in records:
            body = json.loads(record.data)
            if not said:  # once NATS answered: an unreachable server stays one line
                following(f"new messages of stream {ctx.settings.stream} on "
                          f"{redact_url(ctx.settings.nats_url)}, from position "
                          f"{body['position']}")  # fmt: skip
                said = True
            printer.event(envelope_from_body(body, int(body["position"])))
        printer.flush()

    printer.start()
    run_until_signal(lambda stop: follow_stream(ctx.settings, show, stop))


@click.command("schema")
@click.argument("type_", metavar="[TYPE]", required=False,
               help="An event type, e.g. FundsAllocated (default: the schemas of all).")
@pass_context
def schema(ctx: Context, type_: str | None) -> None:
    """JSON Schema of the published envelope, per event type."""
    from homeledger.adapters.schema import all_schemas, event_schema

    if type_ is None:
        click.echo(json.dumps(all_schemas(), indent=2))
        return
    if type_ not in EVENTS:
        raise InputError(f"unknown event type {type_!r} (known: {', '.join(EVENTS.types())})")
    click.echo(json.dumps(event_schema(EVENTS.current(type_)), indent=2))


def register(group: click.Group) -> None:
    group.add_command(events)
    group.add_command(schema)
