"""Looking after the stream without another NATS tool: `stream info`, `consumers list` and
`consumers remove NAME`."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from homeledger.adapters.nats_admin import (
    CONSUMER_COLUMNS,
    ConsumerNotFoundError,
    consumer_rows,
    remove_consumer,
    stream_report,
)
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import InputError, quiet_asyncio
from homeledger.cli.render import emit_object, emit_rows


def _run(coroutine: Any) -> Any:
    with quiet_asyncio():
        return asyncio.run(coroutine)


@click.group("stream")
def stream() -> None:
    """The JetStream stream the relay publishes to (--stream, --nats)."""


@stream.command("info")
@pass_context
def info(ctx: Context) -> None:
    """The stream's configuration and state: subjects, protections, replicas, messages,
    first and last sequence, bytes, consumers, and the store position of its last
    message (what the relay has published up to)."""
    report = _run(stream_report(ctx.settings))
    if ctx.fmt in ("table", "csv"):
        report["subjects"] = ",".join(report["subjects"])  # one cell, not a JSON array
    emit_object(report, ctx.fmt)


@click.group("consumers")
def consumers() -> None:
    """The stream's consumers (durables of `subscribe` and `project`, and ephemeral ones)."""


@consumers.command("list")
@pass_context
def list_(ctx: Context) -> None:
    """Every consumer of the stream: its filter, start, and how far it got (stream
    sequences delivered and acknowledged, acknowledgements pending, events not yet
    delivered)."""
    rows = _run(consumer_rows(ctx.settings))
    if not rows and ctx.fmt == "table":
        click.echo(f"stream {ctx.settings.stream} has no consumers")
        return
    emit_rows(rows, CONSUMER_COLUMNS, ctx.fmt)


@consumers.command("remove")
@click.argument("name", help="The consumer's name (see consumers list).")
@pass_context
def remove(ctx: Context, name: str) -> None:
    """Delete the consumer NAME from the stream (the events stay; a durable of that name
    created again starts over)."""
    try:
        _run(remove_consumer(ctx.settings, name))
    except ConsumerNotFoundError as missing:
        raise InputError(str(missing)) from None
    if ctx.fmt == "table":
        click.echo(f"removed consumer {name} from stream {ctx.settings.stream}")
    else:
        emit_object({"stream": ctx.settings.stream, "removed": name}, ctx.fmt)


def register(group: click.Group) -> None:
    group.add_command(stream)
    group.add_command(consumers)
