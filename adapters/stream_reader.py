"""Reading the whole stream once, in stream order, leaving nothing behind.

For `verify --against-nats` (and anyone who needs every message once): an ephemeral
pull consumer without acknowledgements, in memory, deleted when done (and expiring
by itself 30 s after a crash). `walk_stream` reads up to the stream's last message at the
start; `follow_stream` hands on what is published from now on (`events tail`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from homeledger.adapters.errors import NatsUnavailableError
from homeledger.adapters.nats_connection import NATS_FAILURES, close, connect, explain
from homeledger.adapters.nats_messages import STREAM_SUBJECTS
from homeledger.adapters.nats_stream import missing_stream
from homeledger.adapters.settings import Settings

BATCH = 1000


@dataclass(frozen=True)
class StreamRecord:
    seq: int
    subject: str
    data: bytes


PullSubscription = nats.js.JetStreamContext.PullSubscription
Visitor = Callable[[list[StreamRecord]], Awaitable[None] | None]


async def walk_stream(settings: Settings, visit: Visitor, *, batch: int = BATCH) -> int:
    """Hand every message of the stream to `visit`, in batches; the last sequence read."""
    client = await connect(settings, name="homeledger-reader")
    try:
        js = client.jetstream(timeout=settings.nats_timeout)
        try:
            last = int((await js.stream_info(settings.stream)).state.last_seq)
        except nats.js.errors.NotFoundError:
            raise missing_stream(settings) from None
        if last == 0:
            return 0
        sub = await _ephemeral(js, settings.stream, DeliverPolicy.ALL)
        try:
            return await _read(sub, last, visit, batch, settings.nats_timeout)
        finally:
            await _remove(js, sub, settings.stream)
    except NATS_FAILURES as failure:
        raise NatsUnavailableError(explain(failure, settings.nats_url, settings)) from None
    finally:
        await close(client, settings)


async def _read(sub: PullSubscription, last: int, visit: Visitor, batch: int,
                timeout: float) -> int:  # fmt: skip
    seq = 0
    while seq < last:
        try:
            messages = await sub.fetch(batch, timeout=timeout)
        except nats.errors.TimeoutError:
            raise NatsUnavailableError(
                f"the stream stopped delivering at sequence {seq} of {last}"
            ) from None
        if messages:
            seq = messages[-1].metadata.sequence.stream
            await _hand_over(messages, visit)
    return seq


async def _ephemeral(js: nats.js.JetStreamContext, stream: str,
                     deliver: DeliverPolicy) -> PullSubscription:  # fmt: skip
    """A pull consumer of the whole stream without acknowledgements, held in memory and
    removed by the server if it is left behind; `_remove` deletes it when done."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=deliver,
        inactive_threshold=30.0, mem_storage=True, filter_subject=STREAM_SUBJECTS,
    )  # fmt: skip
    return await js.pull_subscribe(STREAM_SUBJECTS, stream=stream, config=config)


async def _hand_over(messages: list[Msg], visit: Visitor) -> None:
    result = visit([StreamRecord(m.metadata.sequence.stream, m.subject, m.data)
                    for m in messages])  # fmt: skip
    if inspect.isawaitable(result):
        await result


async def _remove(js: nats.js.JetStreamContext,
                  sub: PullSubscription, stream: str) -> None:  # fmt: skip
    with contextlib.suppress(*NATS_FAILURES):
        name = (await sub.consumer_info()).name
        await sub.unsubscribe()  # never drain() after a fetch: it can hang
        await js.delete_consumer(stream, name)


async def follow_stream(settings: Settings, visit: Visitor, stop: asyncio.Event,
                        *, fetch_timeout: float = 1.0) -> int:  # fmt: skip
    """Hand new messages (published from now on) to `visit` until `stop`; how many.

    An ephemeral consumer without acknowledgements, deleted when done.
    """
    client = await connect(settings, name="homeledger-tail", reconnect_forever=True)
    seen = 0
    try:
        js = client.jetstream(timeout=settings.nats_timeout)
        try:
            sub = await _ephemeral(js, settings.stream, DeliverPolicy.NEW)
        except nats.js.errors.NotFoundError:
            raise missing_stream(settings) from None
        try:
            while not stop.is_set():
                try:
                    messages = await sub.fetch(BATCH, timeout=fetch_timeout)
                except nats.errors.TimeoutError:
                    continue
                seen += len(messages)
                await _hand_over(messages, visit)
        finally:
            await _remove(js, sub, settings.stream)
    except NATS_FAILURES as failure:
        raise NatsUnavailableError(explain(failure, settings.nats_url, settings)) from None
    finally:
        await close(client, settings)
    return seen
