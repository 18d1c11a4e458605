"""A pull consumer of the ledger stream, and the loop that feeds a handler.

`consume()` binds to (or creates) a durable consumer, fetches batches, decodes each
message into an Envelope, hands it to the handler and acknowledges it only after the
handler returned. Delivery is at least once: a handler must be idempotent on the
event id (a message whose acknowledgement was lost comes again).

Without a durable name the consumer is ephemeral (an ad-hoc look): held in the
server's memory, deleted when the loop ends, and removed by the server by itself
shortly after a crash, so nothing is left behind. Filters and subjects follow the
settings' subject prefix (`<prefix>.events.>`).

Events reach the handler in stream order under any timing, also after a crash:
messages left unacknowledged are redelivered only after the ack wait, while newer ones
could be delivered at once; the loop holds back what it receives until nothing before
it can still come (see ConsumerLoop), and hands everything on in stream order.

A `batch_handler` gets each fetched batch in one call (a projector commits it in one
transaction) and the loop acknowledges the batch after the call returned; `once` stops
at the stream's last message as of the start (`project --once`). With `pull_ahead` the
next batch is requested as soon as a full one arrives, so that it is delivered while
this one is handled; what was delivered ahead and not fetched is handed back (nak)
when the loop stops.

Known nats-py traps handled here: `pull_subscribe` on an existing durable ignores a
changed config (so the config is compared, and a difference is an error, not a
surprise); `drain()` hangs after a fetch timed out (so the subscription is
unsubscribed and the connection closed instead).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from homeledger.adapters.envelope import Envelope, decode_json, envelope_from_body
from homeledger.adapters.errors import ConfigError, NatsUnavailableError
from homeledger.adapters.nats_connection import NATS_FAILURES, explain, session
from homeledger.adapters.nats_messages import POSITION, stream_subjects, subject_root
from homeledger.adapters.nats_stream import check_subjects, missing_stream
from homeledger.adapters.settings import DEFAULT_SUBJECT_PREFIX, Settings

DURABLE_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
FROM_POSITION_KEY = "homeledger_from_position"
# An ephemeral consumer left behind by a crashed process is removed by the server after
# this long without a fetch (a running one fetches at least every fetch_timeout).
EPHEMERAL_INACTIVE = 60.0


class ConsumerConfigError(Exception):
    """The durable exists with another subject filter or start, or cannot be created."""


class UnreadableMessageError(Exception):
    """A message on the stream is not a homeledger envelope (it is left unacknowledged)."""


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str | None = None  # None: an ephemeral consumer, deleted when done
    subject: str | None = None  # None: every subject of the stream
    from_position: int | None = None  # only when the consumer is created
    ack_wait: float = 30.0
    max_ack_pending: int = 1000
    batch: int = 100
    fetch_timeout: float = 1.0
    prefix: str = DEFAULT_SUBJECT_PREFIX  # the settings' subject prefix (set by consume)

    @property
    def filter(self) -> str:
        """The subject filter: the one asked for, or all of the stream's subjects."""
        return self.subject or stream_subjects(self.prefix)

    @property
    def ephemeral(self) -> bool:
        return self.durable is None

    def check(self) -> None:
        if self.durable is not None and not DURABLE_RE.fullmatch(self.durable):
            raise ConfigError(
                f"--durable {self.durable[:40]!r}: use 1-128 of A-Z, a-z, 0-9, '_' and '-'"
            )
        root = subject_root(self.prefix)
        if self.filter != stream_subjects(self.prefix) and not self.filter.startswith(root + "."):
            raise ConfigError(
                f"--subject {self.filter[:80]!r} is outside the stream: it must start with "
                f"{root}. (e.g. {root}.*.gw-bissau-village)"
            )
        problem = subject_filter_problem(self.filter)
        if problem:
            raise ConfigError(f"--subject {self.filter[:80]!r} is not a valid filter: {problem}")


def subject_filter_problem(subject: str) -> str | None:
    """Why `subject` is not a NATS subject filter, or None when it is one."""
    tokens = subject.split(".")
    for index, part in enumerate(tokens):
        if not part:
            return "empty token (two dots, or a dot at an end)"
        if any(char.isspace() or not char.isprintable() for char in part):
            return "no spaces or control characters"
        if ">" in part and (part != ">" or index != len(tokens) - 1):
            return "'>' only as the whole last token"
        if "*" in part and part != "*":
            return "'*' only as a whole token"
    return None


@dataclass(frozen=True)
class Delivery:
    """One event handed to a handler, with where it sits in the stream."""

    envelope: Envelope
    subject: str
    stream_seq: int
    delivered: int  # how many times it was delivered; > 1 means a redelivery
    payload: dict[str, Any] = field(compare=False, repr=False)  # the message as sent
    # The message's bytes as received (empty when built otherwise): the envelope's JSON
    # as published, kept as it came instead of encoding the envelope again.
    data: bytes = field(default=b"", compare=False, repr=False)


Handler = Callable[[Delivery], Awaitable[None] | None]
# A handler of a whole fetched batch (in stream order): it commits them together, and the
# loop acknowledges them all after it returned.
BatchHandler = Callable[[list[Delivery]], Awaitable[None] | None]


class BatchStoppedError(Exception):
    """A batch handler handled (and committed) the first `handled` deliveries, then failed.

    The loop acknowledges those, leaves the rest unacknowledged, and raises `cause`.
    """

    def __init__(self, handled: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.handled = handled
        self.cause = cause


@dataclass
class ConsumeStats:
    handled: int = 0
    redelivered: int = 0
    skipped: int = 0  # before --from-position
    last_position: int | None = None
    last_seq: int = 0  # the last stream sequence acknowledged by this process


def decode(msg: Msg) -> Delivery:
    meta = msg.metadata
    try:
        body = decode_json(msg.data)
        envelope = envelope_from_body(body, int(body["position"]))
    except Exception as exc:  # noqa: BLE001 - any malformed payload is one kind of failure
        why = str(exc).splitlines()[0][:120] if isinstance(exc, ValueError) and str(exc) else ""
        raise UnreadableMessageError(
            f"stream message {meta.sequence.stream} on {msg.subject} is not a homeledger "
            f"event ({type(exc).__name__}{': ' + why if why else ''}); left unacknowledged"
        ) from None
    return Delivery(envelope, msg.subject, meta.sequence.stream, meta.num_delivered, body,
                    msg.data)  # fmt: skip


# Creating or binding the durable.


async def start_sequence(js: JetStreamContext, stream: str, position: int) -> int:
    """The first stream sequence whose event is at `position` or later (binary search)."""
    state = (await js.stream_info(stream)).state
    if not state.messages:
        return int(state.last_seq) + 1
    low, high = int(state.first_seq), int(state.last_seq) + 1
    while low < high:
        middle = (low + high) // 2
        try:
            message = await js.get_msg(stream, seq=middle)
        except nats.js.errors.NotFoundError:
            return int(state.first_seq)  # a gap: deliver from the start, skip client-side
        if int((message.headers or {}).get(POSITION, "0")) >= position:
            high = middle
        else:
            low = middle + 1
    return low


async def ensure_consumer(js: JetStreamContext, stream: str, spec: ConsumerSpec) -> ConsumerInfo:
    """The durable, created if missing (an existing one must match what is asked), or a
    new ephemeral consumer when the spec names no durable."""
    spec.check()
    if spec.durable is None:
        return await _create(js, stream, spec)
    try:
        info = await js.consumer_info(stream, spec.durable)
    except nats.js.errors.NotFoundError:
        return await _create(js, stream, spec)
    _check_existing(info, spec)
    config = info.config
    if config.ack_wait != spec.ack_wait or config.max_ack_pending != spec.max_ack_pending:
        # Editable settings: apply them, since pull_subscribe would ignore them silently.
        updated = config.evolve(ack_wait=spec.ack_wait, max_ack_pending=spec.max_ack_pending)
        info = await js.add_consumer(stream, config=updated)
    return cast(ConsumerInfo, info)


async def _create(js: JetStreamContext, stream: str, spec: ConsumerSpec) -> ConsumerInfo:
    config = ConsumerConfig(
        name=spec.durable, durable_name=spec.durable,
        description=f"homeledger subscriber {spec.durable}",
        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
        filter_subject=spec.filter, ack_wait=spec.ack_wait,
        max_ack_pending=spec.max_ack_pending, max_waiting=16,
        metadata={FROM_POSITION_KEY: str(spec.from_position or 1)},
    )  # fmt: skip
    if spec.durable is None:  # in memory, one replica, removed if its process dies
        config.name = f"ephemeral-{secrets.token_hex(8)}"
        config.description = "homeledger ephemeral subscriber (deleted when it exits)"
        config.inactive_threshold = EPHEMERAL_INACTIVE
        config.mem_storage, config.num_replicas = True, 1
    if spec.from_position and spec.from_position > 1:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = await start_sequence(js, stream, spec.from_position)
    try:
        return await js.add_consumer(stream, config=config)
    except nats.js.errors.BadRequestError as exc:
        what = f"durable {spec.durable!r}" if spec.durable else "an ephemeral consumer"
        raise ConsumerConfigError(
            f"cannot create {what} on stream {stream}: {exc.description}"
        ) from None


def _check_existing(info: ConsumerInfo, spec: ConsumerSpec) -> None:
    config = info.config
    name = spec.durable
    if config.deliver_subject:
        raise ConsumerConfigError(f"durable {name!r} is a push consumer, not a pull consumer")
    current_filter = config.filter_subject or ",".join(config.filter_subjects or []) or ">"
    if current_filter != spec.filter:
        raise ConsumerConfigError(
            f"durable {name!r} exists with subject filter {current_filter!r}, not "
            f"{spec.filter!r}: a durable keeps its filter; use another --durable, or remove "
            f"it with 'homeledger consumers remove {name}'"
        )
    recorded = (config.metadata or {}).get(FROM_POSITION_KEY, "1")
    if spec.from_position is not None and str(spec.from_position) != recorded:
        raise ConsumerConfigError(
            f"durable {name!r} exists and started at position {recorded}, not "
            f"{spec.from_position}: it resumes where it acknowledged; use another --durable "
            "to start elsewhere"
        )


# The loop.


class _Held:
    """Delivered messages not handed on yet, by stream sequence; the sequence up to which
    every message of the consumer was handed on (or acknowledged before), and the
    sequences handed on lately (to tell a late redelivery of one from a straggler)."""

    RECENT = 100_000

    def __init__(self, floor: int) -> None:
        self.floor = self.handed = floor  # everything up to the floor was acknowledged
        self.items: dict[int, tuple[Msg, Delivery]] = {}
        self.recent: collections.OrderedDict[int, None] = collections.OrderedDict()

    def add(self, msg: Msg, delivery: Delivery) -> str:
        """Hold a delivery: "held"; "again" for one handed on already (a redelivery);
        "late" for an older one this process never handed on (the durable is shared
        with a live process that let it go): it is handed on at once, never lost."""
        seq = delivery.stream_seq
        if seq > self.handed:
            self.items[seq] = (msg, delivery)  # the newest delivery's ack counts
            return "held"
        return "again" if seq in self.recent or seq <= self.floor else "late"

    def handed_on(self, seq: int) -> None:
        self.handed = max(self.handed, seq)
        self.recent[seq] = None
        if len(self.recent) > self.RECENT:
            self.recent.popitem(last=False)

    def in_order(self) -> list[int]:
        return sorted(self.items)

    def contiguous(self) -> list[int]:
        """The held sequences that follow the last handed on without a gap."""
        run, expected = [], self.handed + 1
        for seq in self.in_order():
            if seq != expected:
                break
            run.append(seq)
            expected += 1
        return run

    def take(self, sequences: list[int]) -> list[tuple[Msg, Delivery]]:
        return [self.items.pop(seq) for seq in sequences]


@dataclass
class ConsumerLoop:
    """Fetches, holds and hands on deliveries in stream order, under any timing.

    JetStream redelivers a message that was not acknowledged in time (its process died,
    its acknowledgement was lost, or a fetch that had expired dropped it) only after the
    ack wait, while newer messages may be delivered at once: deliveries interleave. So
    a delivery is held until nothing before it can still come: when the held ones follow
    the last handed on without a gap, or (a gap: a filter, a deleted message, or one
    still to be redelivered) when every message the consumer has outstanding is held
    here (`num_ack_pending`). Held messages are marked in progress each round, so that
    their ack wait does not run out while they wait. A redelivery of one already handed
    on is acknowledged and dropped.

    The order is exact for a durable that one live process consumes at a time (others
    may have died, leaving messages pending). Live processes sharing a durable split
    the messages between them; each hands its share on in order, unless one lets a
    message's ack wait run out and it reaches another after newer ones: that one is
    handed on late rather than lost.
    """

    client: Client
    js: JetStreamContext
    stream: str
    spec: ConsumerSpec
    handler: Handler
    stats: ConsumeStats = field(default_factory=ConsumeStats)
    max_outage: float | None = None
    nats_url: str = ""
    batch_handler: BatchHandler | None = None
    consumer_name: str = ""  # the durable's name, or the ephemeral consumer's
    # Ask for the next batch as soon as a full one arrives, before handling it (see
    # _pull_ahead): for a batch handler catching up with a long stream.
    pull_ahead: bool = False

    async def run(self, *, max_messages: int | None = None, idle: float | None = None,
                  stop: asyncio.Event | None = None,
                  until_seq: int | None = None) -> ConsumeStats:  # fmt: skip
        """Until `max_messages` were handled, nothing came for `idle` seconds, `stop`, or
        stream sequence `until_seq` was acknowledged (or had been before)."""
        stop = stop or asyncio.Event()
        info = await ensure_consumer(self.js, self.stream, self.spec)
        self.consumer_name = info.name
        floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        self.stats.last_seq = floor
        if until_seq is not None and floor >= until_seq:
            await self._remove_ephemeral()
            return self.stats
        held = _Held(floor)
        sub = await self.js.pull_subscribe_bind(durable=info.name, stream=self.stream)
        last_activity = healthy_since = time.monotonic()
        try:
            while not stop.is_set() and not self._reached(max_messages):
                try:
                    messages = await sub.fetch(self._want(max_messages, held),
                                               timeout=self.spec.fetch_timeout)  # fmt: skip
                except TimeoutError:  # nats-py raises its own and asyncio's, both TimeoutError
                    messages = []
                except NATS_FAILURES as failure:
                    healthy_since = await self._outage(healthy_since, failure)
                    continue
                healthy_since = time.monotonic()
                if messages:
                    last_activity = time.monotonic()
                    if self.pull_ahead:
                        await self._pull_ahead(sub, messages, until_seq)
                await self._dispatch(messages, held, max_messages)
                if until_seq is not None and self.stats.last_seq >= until_seq:
                    break
                if idle is not None and not messages and not held.items \
                        and time.monotonic() - last_activity >= idle:  # fmt: skip
                    break
        finally:
            await self._shutdown(sub, held)
        return self.stats

    async def _pull_ahead(self, sub: JetStreamContext.PullSubscription, messages: list[Msg],
                          until_seq: int | None) -> None:  # fmt: skip
        """Request the next batch now, so that JetStream delivers it while this one is
        handled and the next fetch finds it waiting (nats-py's fetch takes what its
        subscription already holds first) instead of waiting a round trip for it.

        Only after a full batch (a shorter one means the stream is drained), and never
        beyond `until_seq`. What is delivered ahead is held like any fetched message:
        handled in stream order by the next fetches, or handed back (nak) on shutdown.
        The request is the one nats-py's fetch sends (its subject and inbox are
        attributes of the subscription in the pinned nats-py 2.16; the tests in
        tests/integration/test_consumer_order.py fail if that changes).
        """
        want = self.spec.batch
        if len(messages) < want:
            return
        if until_seq is not None:
            last = max(msg.metadata.sequence.stream for msg in messages)
            want = min(want, until_seq - last)
        if want <= 0:
            return
        request = json.dumps({"batch": want, "no_wait": True}).encode()
        with contextlib.suppress(*NATS_FAILURES):  # a lost request costs only the time
            await self.client.publish(sub._nms, request, reply=sub._deliver)

    def _reached(self, max_messages: int | None) -> bool:
        return max_messages is not None and self.stats.handled >= max_messages

    def _want(self, max_messages: int | None, held: _Held) -> int:
        if held.items or max_messages is None:
            return self.spec.batch
        return max(1, min(self.spec.batch, max_messages - self.stats.handled))

    async def _dispatch(self, messages: list[Msg], held: _Held,
                        max_messages: int | None) -> None:  # fmt: skip
        late: list[tuple[Msg, Delivery]] = []
        for msg in messages:
            delivery = decode(msg)
            kind = held.add(msg, delivery)
            if kind == "again":
                await msg.ack()  # handed on before: a redelivery changes nothing
            elif kind == "late":
                late.append((msg, delivery))
        if late:
            await self._handle_all(late, max_messages, held)
        if not held.items:
            return
        ready = held.contiguous()
        if len(ready) < len(held.items) and await self._all_outstanding_held(held):
            ready = held.in_order()
        if ready:
            await self._handle_all(held.take(ready), max_messages, held)
        await _in_progress(msg for msg, _ in held.items.values())

    async def _all_outstanding_held(self, held: _Held) -> bool:
        """Whether every message this consumer has delivered and not had acknowledged is
        held here: then none before the held ones can still come."""
        try:
            await self.client.flush(timeout=2)  # our acknowledgements reach the server first
            info = await self.js.consumer_info(self.stream, self.consumer_name)
        except NATS_FAILURES:
            return False  # unknown: hold on, and ask again after the next fetch
        return int(info.num_ack_pending or 0) <= len(held.items)

    async def _handle_all(self, items: list[tuple[Msg, Delivery]], max_messages: int | None,
                          held: _Held) -> None:  # fmt: skip
        if self.batch_handler is not None:
            await self._handle_batch(items, max_messages, held)
            return
        for index, (msg, delivery) in enumerate(items):
            if self._reached(max_messages):
                await _nak_all(msg for msg, _ in items[index:])
                return
            await self._handle(msg, delivery)
            held.handed_on(delivery.stream_seq)

    async def _handle(self, msg: Msg, delivery: Delivery) -> None:
        start = self.spec.from_position
        if start is not None and delivery.envelope.position < start:
            self.stats.skipped += 1
        else:
            result = self.handler(delivery)
            if inspect.isawaitable(result):
                await result
            self.stats.handled += 1
            self.stats.redelivered += delivery.delivered > 1
            self.stats.last_position = delivery.envelope.position
        await msg.ack()
        self.stats.last_seq = max(self.stats.last_seq, delivery.stream_seq)

    async def _handle_batch(self, items: list[tuple[Msg, Delivery]],
                            max_messages: int | None, held: _Held) -> None:  # fmt: skip
        room = len(items) if max_messages is None else max_messages - self.stats.handled
        taken, rest = items[:room], items[room:]
        start = self.spec.from_position
        wanted = [d for _, d in taken if start is None or d.envelope.position >= start]
        self.stats.skipped += len(taken) - len(wanted)
        try:
            result = self.batch_handler(wanted) if self.batch_handler and wanted else None
            if inspect.isawaitable(result):
                await result
        except BatchStoppedError as stopped:
            done = {d.stream_seq for d in wanted[: stopped.handled]}
            self._count(wanted[: stopped.handled])
            await _ack_all(msg for msg, d in taken if d.stream_seq in done)
            for seq in sorted(done):
                held.handed_on(seq)
            raise stopped.cause from None
        self._count(wanted)
        await _ack_all(msg for msg, _ in taken)
        await _nak_all(msg for msg, _ in rest)
        for _, delivery in taken:
            held.handed_on(delivery.stream_seq)
        if taken:
            self.stats.last_seq = max(self.stats.last_seq, taken[-1][1].stream_seq)

    def _count(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self.stats.handled += 1
            self.stats.redelivered += delivery.delivered > 1
            self.stats.last_position = delivery.envelope.position

    async def _outage(self, healthy_since: float, failure: BaseException) -> float:
        limit = self.max_outage
        if limit is not None and time.monotonic() - healthy_since > limit:
            why = explain(failure, self.nats_url)
            raise NatsUnavailableError(f"gave up after {limit:g}s without NATS: {why}")
        await asyncio.sleep(0.5)
        return healthy_since

    async def _shutdown(self, sub: JetStreamContext.PullSubscription, held: _Held) -> None:
        await _nak_all(msg for msg, _ in held.items.values())
        await _nak_all(_waiting(sub))  # delivered ahead, never fetched
        # Unacknowledged messages are redelivered later: at least once, never lost.
        with contextlib.suppress(*NATS_FAILURES):
            await self.client.flush(timeout=2)  # the acknowledgements go out first
        with contextlib.suppress(*NATS_FAILURES):
            await sub.unsubscribe()  # never drain() after a fetch timeout: it hangs
        await self._remove_ephemeral()

    async def _remove_ephemeral(self) -> None:
        """An ephemeral consumer is deleted when done (else the server removes it after
        EPHEMERAL_INACTIVE). A cluster may not answer for a moment: a few tries."""
        if not (self.spec.ephemeral and self.consumer_name):
            return
        for attempt in range(3):
            try:
                await self.js.delete_consumer(self.stream, self.consumer_name)
                return
            except nats.js.errors.NotFoundError:
                return
            except NATS_FAILURES:
                await asyncio.sleep(0.2 * (attempt + 1))


def _waiting(sub: JetStreamContext.PullSubscription) -> list[Msg]:
    """The messages delivered to the subscription and not fetched yet (status messages,
    which answer a pull request, left out)."""
    queue = sub._sub._pending_queue if sub._sub is not None else None
    found: list[Msg] = []
    while queue is not None and not queue.empty():
        msg = queue.get_nowait()
        if msg.reply and not JetStreamContext.is_status_msg(msg):
            found.append(msg)
    return found


async def _ack_all(messages: Any) -> None:
    for msg in messages:
        await msg.ack()


async def _in_progress(messages: Any) -> None:
    """Tell JetStream that held messages are being worked on: their ack wait starts
    again, so that they are not redelivered (to another process) while they wait."""
    for msg in messages:
        try:
            await msg.in_progress()
        except NATS_FAILURES:
            return


async def _nak_all(messages: Any) -> None:
    """Hand messages back at once, so that the next consumer needs no ack wait."""
    for msg in messages:
        try:
            await msg.nak()
        except NATS_FAILURES:
            return


async def consume(
    settings: Settings, spec: ConsumerSpec, handler: Handler, *,
    max_messages: int | None = None, idle: float | None = None,
    stop: asyncio.Event | None = None, max_outage: float | None = None,
    report: Callable[[str], None] | None = None, batch_handler: BatchHandler | None = None,
    once: bool = False, pull_ahead: bool = False,
) -> ConsumeStats:  # fmt: skip
    """Connect, bind the durable, and feed `handler` until done. For CLI and projectors.

    With `batch_handler`, each fetched batch goes to it at once (and `handler` is unused).
    With `once`, it returns when the stream's last message at the start was acknowledged
    (for the whole stream's subjects; a narrower filter may never reach it).
    """
    spec = replace(spec, prefix=settings.subject_prefix)
    spec.check()
    name = f"homeledger-consumer:{spec.durable or 'ephemeral'}"
    async with session(settings, name=name, reconnect_forever=True, on_event=report) as client:
        js = client.jetstream(timeout=settings.nats_timeout)
        loop = ConsumerLoop(client, js, settings.stream, spec, handler, max_outage=max_outage,
                            nats_url=settings.nats_url, batch_handler=batch_handler,
                            pull_ahead=pull_ahead)  # fmt: skip
        try:
            info = await js.stream_info(settings.stream)
            check_subjects(info.config, spec.prefix)
            until = int(info.state.last_seq) if once else None
            return await loop.run(max_messages=max_messages, idle=idle, stop=stop,
                                  until_seq=until)  # fmt: skip
        except nats.js.errors.NotFoundError:
            raise missing_stream(settings) from None
