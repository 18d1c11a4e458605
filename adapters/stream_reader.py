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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from homeledger.adapters.errors import NatsUnavailableError
from homeledger.adapters.nats_connection import NATS_FAILURES, session
from homeledger.adapters.nats_messages import stream_subjects
from homeledger.adapters.nats_stream import check_subjects, missing_stream
from homeledger.adapters.settings import Settings

BATCH = 1000
# On a cluster, a consumer just created may answer "no responders" for a moment (its
# leader is not placed yet): a fetch is tried again for this long before giving up.
NOT_READY_FOR = 5.0


@dataclass(frozen=True)
class StreamRecord:
    seq: int
    subject: str
    data: bytes


PullSubscription = nats.js.JetStreamContext.PullSubscription
Visitor = Callable[[list[StreamRecord]], Awaitable[None] | None]


async def walk_stream(settings: Settings, visit: Visitor, *, batch: int = BATCH) -> int:
    """Hand every message of the stream to `visit`, in batches; the last sequence read."""
    async with session(settings, name="homeledger-reader") as client:
        js = client.jetstream(timeout=settings.nats_timeout)
        try:
            info = await js.stream_info(settings.stream)
        except nats.js.errors.NotFoundError:
            raise missing_stream(settings) from None
        check_subjects(info.config, settings.subject_prefix)
        last = int(info.state.last_seq)
        if last == 0:
            return 0
        sub = await _ephemeral(js, settings, DeliverPolicy.ALL)
        try:
            return await _read(sub, last, visit, batch, settings.nats_timeout)
        finally:
            await _remove(js, sub, settings.stream)


async def _read(sub: PullSubscription, last: int, visit: Visitor, batch: int,
                timeout: float) -> int:  # fmt: skip
    seq = 0
    while seq < last:
        try:
            messages = await _fetch(sub, batch, timeout)
        except nats.errors.TimeoutError:
            raise NatsUnavailableError(
                f"the stream stopped delivering at sequence {seq} of {last}"
            ) from None
        if messages:
            seq = messages[-1].metadata.sequence.stream
            await _hand_over(messages, visit)
    return seq


async def _fetch(sub: PullSubscription, batch: int, timeout: float) -> list[Msg]:
    """`sub.fetch`, waiting out a consumer that does not answer yet (503)."""
    deadline = time.monotonic() + NOT_READY_FOR
    while True:
        try:
            return await sub.fetch(batch, timeout=timeout)
        except nats.js.errors.ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _ephemeral(js: nats.js.JetStreamContext, settings: Settings,
                     deliver: DeliverPolicy) -> PullSubscription:  # fmt: skip
    """A pull consumer of the whole stream without acknowledgements, held in memory and
    removed by the server if it is left behind; `_remove` deletes it when done."""
    subjects = stream_subjects(settings.subject_prefix)
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=deliver,
        inactive_threshold=30.0, mem_storage=True, filter_subject=subjects,
    )  # fmt: skip
    return await js.pull_subscribe(subjects, stream=settings.stream, config=config)


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
    seen = 0
    async with session(settings, name="homeledger-tail", reconnect_forever=True) as client:
        js = client.jetstream(timeout=settings.nats_timeout)
        try:
            check_subjects((await js.stream_info(settings.stream)).config,
                           settings.subject_prefix)  # fmt: skip
            sub = await _ephemeral(js, settings, DeliverPolicy.NEW)
        except nats.js.errors.NotFoundError:
            raise missing_stream(settings) from None
        try:
            while not stop.is_set():
                try:
                    messages = await _fetch(sub, BATCH, fetch_timeout)
                except TimeoutError:  # nats-py raises its own and asyncio's: nothing new
                    continue
                seen += len(messages)
                await _hand_over(messages, visit)
        finally:
            await _remove(js, sub, settings.stream)
    return seen
