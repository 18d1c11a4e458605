"""The relay: every stored event to JetStream, in store order, exactly once.

How each guarantee is kept:

- Order. Events are read in store order after the relay's position and published
  pipelined (`publish_async`) in windows. Each message carries the stream sequence
  it must follow (Nats-Expected-Last-Sequence), so a message lost mid-window can never
  be overtaken by a later one: those are refused, and the window is retried.
- Nothing lost. The relay's position (`relay_position`) advances only after JetStream
  acknowledged the whole window, in order, with the sequences expected. Every
  acknowledgement is awaited under `asyncio.wait_for`; a timeout means "unknown" and
  the window is retried.
- Nothing stored twice. Before publishing, and after every failure, the relay reads
  the stream's last message and resumes after the position it carries (so a crash
  between JetStream's acknowledgement and recording the position costs nothing). A retry uses
  the same Nats-Msg-Id (the event id), which JetStream also de-duplicates within the
  stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck

from homeledger.adapters.envelope import Envelope
from homeledger.adapters.errors import NatsUnavailableError
from homeledger.adapters.nats_connection import NATS_FAILURES, close, connect, explain
from homeledger.adapters.nats_messages import (
    EXPECTED_LAST_SEQUENCE,
    MSG_ID,
    POSITION,
    message_for,
)
from homeledger.adapters.nats_stream import StreamSpec, ensure_stream
from homeledger.adapters.relay_position import RelayPosition
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore

DEFAULT_WINDOW = 1000
DEFAULT_ACK_TIMEOUT = 5.0
MAX_POSITION = 2**63 - 1  # the largest position a store holds
DEFAULT_POLL_INTERVAL = 0.01  # idle cost: one max-position query per 10 ms; latency p50 -5 ms
T = TypeVar("T")


class WindowFailedError(Exception):
    """A window was not acknowledged as expected: its outcome is unknown, retry it."""


class StreamDisagreesError(Exception):
    """The stream's last message is not the store's event at its position (a finding)."""


RETRYABLE: tuple[type[BaseException], ...] = (WindowFailedError, *NATS_FAILURES)


class Progress(Protocol):
    def start(self, backlog: int) -> None: ...
    def advance(self, published: int) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, backlog: int) -> None:
        pass

    def advance(self, published: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class RelayOptions:
    window: int = DEFAULT_WINDOW
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_outage: float | None = None  # give up after this long without progress
    stream: StreamSpec | None = None  # default: the settings' stream, one replica


@dataclass
class RelayStats:
    published: int = 0  # messages JetStream acknowledged as new
    duplicates: int = 0  # messages JetStream already held
    windows: int = 0
    retries: int = 0
    position: int = 0  # the relay's position: every event up to it is in the stream


@dataclass
class _StreamTail:
    """Where the stream ends: its last sequence and the store position there."""

    last_seq: int
    position: int | None


@dataclass
class Relay:
    store: LedgerStore
    settings: Settings
    options: RelayOptions = field(default_factory=RelayOptions)
    report: Callable[[str], None] = lambda _line: None
    progress: Progress = field(default_factory=NoProgress)
    stats: RelayStats = field(default_factory=RelayStats)

    def __post_init__(self) -> None:
        self.spec = self.options.stream or StreamSpec(
            self.settings.stream, prefix=self.settings.subject_prefix
        )
        self.position = RelayPosition(self.store, self.spec.name)
        self.name = self.position.name
        self._last_report, self._last_report_at = "", 0.0

    def _advance(self, position: int) -> None:
        if position <= self.stats.position:
            return
        self.position.record(position)
        self.stats.position = max(self.stats.position, position)

    # Running.

    async def run(self, *, once: bool = False, stop: asyncio.Event | None = None) -> RelayStats:
        """Publish the backlog; with `once` return when drained, else follow until `stop`."""
        stop = stop or asyncio.Event()
        client = await connect(self.settings, name=self.name, reconnect_forever=True,
                               on_event=self.report)  # fmt: skip
        try:
            js = client.jetstream(timeout=self.options.ack_timeout)
            await self._with_retries(lambda: ensure_stream(js, self.spec), stop)
            await self._loop(js, once, stop)
        finally:
            self.progress.finish()
            await close(client, self.settings)
        return self.stats

    async def _loop(self, js: JetStreamContext, once: bool, stop: asyncio.Event) -> None:
        self.stats.position = self.position.read()
        tail = await self._with_retries(lambda: self._reconcile(js), stop)
        if tail is None:
            return
        self.progress.start(max(0, self.store.max_position() - self.stats.position))
        window = self.options.window
        healthy_since = time.monotonic()
        batch: list[Envelope] | None = None
        while not stop.is_set():
            if batch is None:
                batch = self._read(self.stats.position + 1, window)
            if not batch:
                if once:
                    return
                batch = None
                await _sleep_or_stop(stop, self.options.poll_interval)
                continue
            try:
                tail.last_seq, ahead = await self._publish(js, batch, tail.last_seq)
            except RETRYABLE as failure:
                self._check_outage(healthy_since, failure)
                self.stats.retries += 1
                window, batch = 1, None  # probe with one message before full windows again
                tail_or_none = await self._with_retries(lambda: self._reconcile(js), stop)
                if tail_or_none is None:
                    return
                tail = tail_or_none
                continue
            self._advance(batch[-1].position)
            self.progress.advance(len(batch))
            self.stats.windows += 1
            window, batch = self.options.window, ahead or None
            healthy_since = time.monotonic()

    def _read(self, start: int, count: int) -> list[Envelope]:
        """The next `count` stored events from position `start`, in store order."""
        return list(itertools.islice(self.store.envelopes(start, page=count), count))

    async def _publish(self, js: JetStreamContext, batch: list[Envelope],
                       last_seq: int) -> tuple[int, list[Envelope]]:  # fmt: skip
        """Publish one window; the stream's last sequence once all of it is acknowledged.

        While JetStream stores the window, the next one is read from the store (and
        returned too), so reading and storing overlap.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for offset, envelope in enumerate(batch):
                message = message_for(envelope, self.spec.prefix)
                headers = {**message.headers, EXPECTED_LAST_SEQUENCE: str(last_seq + offset)}
                # No wait_stall: a window never exceeds nats-py's 4000 pending publishes,
                # and a bounded wait here would hand control to the flusher per message.
                futures.append(await js.publish_async(
                    message.subject, message.payload, headers=headers,
                ))  # fmt: skip
            await asyncio.sleep(0)  # let nats-py's flusher write the window out
            ahead = self._read(batch[-1].position + 1, self.options.window)
            deadline = loop.time() + self.options.ack_timeout
            seq = last_seq
            for envelope, future in zip(batch, futures, strict=True):
                # An error answer never resolves a publish_async future (nats.py #985),
                # so every wait is bounded; a timeout means "unknown, retry".
                if not future.done():
                    await asyncio.wait_for(future, max(deadline - loop.time(), 0.001))
                seq = self._check_ack(future.result(), envelope, seq)
            return seq, ahead
        except TimeoutError:
            raise WindowFailedError(
                f"no acknowledgement within {self.options.ack_timeout:g}s"
            ) from None
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # frees nats-py's pending-publish slot

    def _check_ack(self, ack: PubAck, envelope: Envelope, seq: int) -> int:
        if ack.stream != self.spec.name:
            raise WindowFailedError(
                f"position {envelope.position} was stored in stream {ack.stream!r}, "
                f"not {self.spec.name!r}: another stream claims {self.spec.subjects}"
            )
        if ack.duplicate:
            # Already in the stream (an earlier attempt stored it): nothing new stored.
            self.stats.duplicates += 1
            return seq
        if ack.seq != seq + 1:
            raise WindowFailedError(f"position {envelope.position} got sequence {ack.seq}, "
                                    f"expected {seq + 1}")  # fmt: skip
        self.stats.published += 1
        return int(ack.seq)

    async def _reconcile(self, js: JetStreamContext) -> _StreamTail:
        """Read the stream's tail and resume after the position it holds."""
        try:
            info = await js.stream_info(self.spec.name)
        except nats.js.errors.NotFoundError:
            info = await ensure_stream(js, self.spec)  # deleted under a running relay
        last_seq = int(info.state.last_seq or 0)
        position = await self._tail_position(js, last_seq) if info.state.messages else None
        recorded = self.stats.position
        if position is not None:
            version = await self._check_tail(js, last_seq, position)
            self._check_count(int(info.state.messages or 0), position, version, recorded)
        if position is not None and position > recorded:
            self._advance(position)  # acknowledged before the last crash
        elif position is None and last_seq == 0 and recorded:
            self.report(f"stream {self.spec.name} is new and empty: publishing every "
                        "event from position 1")
            self.stats.position = 0
        return _StreamTail(last_seq, position)

    def _check_count(self, messages: int, position: int, version: int, recorded: int) -> None:
        """The stream must hold exactly the store's events up to its last one, and at
        least every event JetStream acknowledged to the relay.

        Versions run 1, 2, 3... in store order, so the event at `position` is the
        `version`-th: a stream the relay alone wrote holds that many messages. More is
        a message someone else published (a copy of an old event would otherwise make
        the relay publish everything after it again), fewer a message removed; a last
        position below the relay's is acknowledged messages lost, or such a copy. Each
        is a disagreement: publishing could store an event twice or skip some.
        """
        name = self.spec.name
        if messages != version:
            raise StreamDisagreesError(
                f"stream {name} holds {messages} messages, but its last one is the store's "
                f"event at position {position}, the {version}th: the stream holds messages "
                "the relay did not publish, or lost some; refusing to publish"
            )
        if position < recorded:
            raise StreamDisagreesError(
                f"stream {name} ends at position {position}, but JetStream acknowledged every "
                f"event up to position {recorded}: the stream lost acknowledged messages; "
                "refusing to publish (delete the stream to publish everything again)"
            )

    async def _check_tail(self, js: JetStreamContext, last_seq: int, position: int) -> int:
        """The stream's last message must be the store's event at that position; its
        version (how many events the store holds up to it).

        Otherwise the stream and the store disagree (an older copy of the store, or a
        stream holding another ledger): resuming would skip or mix facts, so refuse.
        """
        message = await js.get_msg(self.spec.name, seq=last_seq)
        try:
            body = json.loads(message.data or b"")
            published = (str(body["event_id"]), str(body["hash"]))
        except (ValueError, TypeError, KeyError):
            published = (str((message.headers or {}).get(MSG_ID)), "")
        stored = next(iter(self._read(position, 1)), None)
        if stored is None or stored.position != position:
            raise StreamDisagreesError(
                f"stream {self.spec.name} and the store disagree at position {position}: "
                "the stream holds it but the store does not (the store ends at "
                f"{self.store.max_position()}); refusing to publish"
            )
        if (stored.event_id, stored.hash) != published:
            raise StreamDisagreesError(
                f"stream {self.spec.name} and the store disagree at position {position}: "
                f"the stream holds event {published[0]}, the store {stored.event_id}; "
                "refusing to publish"
            )
        return stored.aggregate_version

    async def _tail_position(self, js: JetStreamContext, last_seq: int) -> int:
        """The store position the stream's last message carries; a last message that is
        gone or carries none was not left there by the relay: a disagreement."""
        where = f"the last message of stream {self.spec.name} (sequence {last_seq})"
        try:
            message = await js.get_msg(self.spec.name, seq=last_seq)
        except nats.js.errors.NotFoundError:
            raise StreamDisagreesError(f"{where} was deleted; refusing to publish") from None
        value = str((message.headers or {}).get(POSITION, ""))
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_POSITION:
            raise StreamDisagreesError(
                f"{where} carries no valid {POSITION} header: it was not published by the "
                "relay; refusing to publish"
            )
        return int(value)

    async def _with_retries(
        self, action: Callable[[], Awaitable[T]], stop: asyncio.Event
    ) -> T | None:
        """`action` until it succeeds (None if stopped first), backing off on NATS failures."""
        started, delay = time.monotonic(), 0.1
        while not stop.is_set():
            try:
                return await action()
            except NATS_FAILURES as failure:
                self._check_outage(started, failure)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 2.0)
        return None

    def _check_outage(self, healthy_since: float, failure: BaseException) -> None:
        why = explain(failure, self.settings.nats_url, self.settings)
        limit = self.options.max_outage
        if limit is not None and time.monotonic() - healthy_since > limit:
            raise NatsUnavailableError(f"gave up after {limit:g}s without progress: {why}")
        now = time.monotonic()
        if why != self._last_report or now - self._last_report_at > 10:
            self.report(f"retrying: {why}")
            self._last_report, self._last_report_at = why, now


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["NoProgress", "Progress", "Relay", "RelayOptions", "RelayStats",
           "StreamDisagreesError"]
