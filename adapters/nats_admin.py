"""What an operator asks of the ledger's stream, with homeledger alone (no other NATS tool).

`stream_report`: the stream's configuration and state (subjects, protections, replicas,
messages, sequences, bytes) and where its last message sits in the store;
`consumer_rows`: every consumer of the stream and how far it got; `remove_consumer`:
delete one (a durable that is no longer wanted, or one whose filter must change).
Each is one connection, closed when done; NATS failures become one line (exit 4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo

from homeledger.adapters.consumer import DURABLE_RE, FROM_POSITION_KEY
from homeledger.adapters.errors import ConfigError
from homeledger.adapters.nats_connection import session
from homeledger.adapters.nats_messages import EVENT_TYPE, MSG_ID, POSITION
from homeledger.adapters.nats_stream import missing_stream
from homeledger.adapters.settings import Settings

T = TypeVar("T")
LIST_PAGE = 256  # JetStream lists at most this many consumers per request

CONSUMER_COLUMNS = ("name", "kind", "filter", "from_position", "delivered_seq", "acked_seq",
                    "ack_pending", "redelivered", "pending", "last_active")  # fmt: skip


class ConsumerNotFoundError(Exception):
    """No consumer of that name on the stream (nothing was removed)."""


async def _with_stream(settings: Settings, action: Callable[[JetStreamContext], Awaitable[T]],
                       purpose: str) -> T:  # fmt: skip
    async with session(settings, name=f"homeledger-{purpose}") as client:
        try:
            return await action(client.jetstream(timeout=settings.nats_timeout))
        except nats.js.errors.NotFoundError:
            raise missing_stream(settings) from None


# stream info


async def stream_report(settings: Settings) -> dict[str, Any]:
    """The stream's configuration and state, and its last message's store position."""

    async def report(js: JetStreamContext) -> dict[str, Any]:
        info = await js.stream_info(settings.stream)
        last = await _last_message_headers(js, settings.stream, int(info.state.last_seq or 0))
        return _describe_stream(info, last)

    return await _with_stream(settings, report, "stream-info")


async def _last_message_headers(js: JetStreamContext, stream: str, last_seq: int) -> dict[str, str]:
    if not last_seq:
        return {}
    try:
        message = await js.get_msg(stream, seq=last_seq)
    except nats.js.errors.NotFoundError:
        return {}  # removed (only possible on a stream without deny-delete)
    return dict(message.headers or {})


def _describe_stream(info: StreamInfo, last: dict[str, str]) -> dict[str, Any]:
    config, state = info.config, info.state
    position = last.get(POSITION, "")
    return {
        "stream": config.name,
        "subjects": list(config.subjects or []),
        "storage": _enum(config.storage),
        "retention": _enum(config.retention),
        "replicas": config.num_replicas or 1,
        "leader": info.cluster.leader if info.cluster else None,
        "duplicate_window": _seconds(config.duplicate_window),
        "deny_delete": bool(config.deny_delete),
        "deny_purge": bool(config.deny_purge),
        "allow_rollup": bool(config.allow_rollup_hdrs),
        "messages": int(state.messages or 0),
        "bytes": int(state.bytes or 0),
        "first_seq": int(state.first_seq or 0),
        "last_seq": int(state.last_seq or 0),
        "deleted": int(state.num_deleted or 0),
        "consumers": int(state.consumer_count or 0),
        "last_position": int(position) if position.isdigit() else None,
        "last_type": last.get(EVENT_TYPE),
        "last_event_id": last.get(MSG_ID),
        "created": _time(info.created),
    }


# consumers list / remove


async def consumer_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per consumer of the stream, by name."""

    async def rows(js: JetStreamContext) -> list[dict[str, Any]]:
        await js.stream_info(settings.stream)  # a missing stream is said as such
        found: list[ConsumerInfo] = []
        while True:
            page = await js.consumers_info(settings.stream, offset=len(found))
            found += page
            if len(page) < LIST_PAGE:
                break
        return [_describe_consumer(info) for info in sorted(found, key=lambda i: i.name)]

    return await _with_stream(settings, rows, "consumers")


def _describe_consumer(info: ConsumerInfo) -> dict[str, Any]:
    config = info.config
    delivered = info.delivered.stream_seq if info.delivered else 0
    filters = config.filter_subject or ",".join(config.filter_subjects or []) or ">"
    active = info.delivered.last_active if info.delivered else None
    return {
        "name": info.name,
        "kind": "durable" if config.durable_name else "ephemeral",
        "filter": filters,
        "from_position": _int_or_none((config.metadata or {}).get(FROM_POSITION_KEY)),
        "delivered_seq": int(delivered or 0),
        "acked_seq": int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0,
        "ack_pending": int(info.num_ack_pending or 0),
        "redelivered": int(info.num_redelivered or 0),
        "pending": int(info.num_pending or 0),
        "last_active": _time(active),
    }


async def remove_consumer(settings: Settings, name: str) -> None:
    """Delete the consumer `name` from the stream; ConsumerNotFoundError if there is none."""
    if not DURABLE_RE.fullmatch(name):
        raise ConfigError(f"consumer name {name[:40]!r}: use 1-128 of A-Z, a-z, 0-9, '_', '-'")

    async def remove(js: JetStreamContext) -> None:
        await js.stream_info(settings.stream)  # a missing stream is said as such
        try:
            await js.delete_consumer(settings.stream, name)
        except nats.js.errors.NotFoundError:
            raise ConsumerNotFoundError(
                f"stream {settings.stream} has no consumer {name!r} "
                "(see 'homeledger consumers list')"
            ) from None

    await _with_stream(settings, remove, "consumers")


# Plain values for every output format.


def _enum(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _seconds(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 3)


def _time(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


__all__ = ["CONSUMER_COLUMNS", "ConsumerNotFoundError", "consumer_rows", "remove_consumer",
           "stream_report"]
