"""A durable consumer hands events on in stream order under any timing.

JetStream redelivers a message that was not acknowledged in time only after the ack
wait, while newer messages may be delivered at once, so deliveries interleave: after a
crash that left messages pending, while another process works on the same durable and
leaves some unacknowledged, or when the machine is too busy for the ack wait. Whatever
the interleaving, `consume()` hands each message on once, in stream order (none older
after a newer one), and together with what another process acknowledged, every one.

The CPU is loaded by busy processes for the length of each test (two, as many as the
machine's cores), with a one-second ack wait, so that redeliveries and new deliveries
do interleave.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import nats
import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.consumer import (
    ConsumerLoop,
    ConsumerSpec,
    Delivery,
    consume,
    ensure_consumer,
)
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import Settings
from tests.nats_helpers import cli_env, invoke, record_bulk, record_story, store_envelopes

pytestmark = pytest.mark.nats
BURNERS = 2


@pytest.fixture
def busy_cpu() -> Iterator[None]:
    """Processes that keep the cores busy until the test ends (stopped by their PIDs)."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(BURNERS)]  # fmt: skip
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=30)


@pytest.fixture
def ledger(make_app: Callable[..., LedgerApplication], sqlite_url: str,
           server: NatsServer) -> LedgerApplication:  # fmt: skip
    app = make_app(sqlite_url)
    record_story(app)
    record_bulk(app, 300)
    assert invoke(["relay", "--once"], cli_env(sqlite_url, server.url)).exit_code == 0
    return app


async def leave_some_pending(url: str, spec: ConsumerSpec, rounds: int, acks: set[int]) -> None:
    """Another process on the same durable: it fetches, acknowledges a third of what it
    gets (recorded in `acks`) and leaves the rest to be redelivered."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_consumer(js, "HOMELEDGER", spec)
        sub = await js.pull_subscribe_bind(durable=spec.durable, stream="HOMELEDGER")
        for _ in range(rounds):
            try:
                messages = await sub.fetch(20, timeout=1)
            except TimeoutError:
                continue
            for msg in messages:
                if msg.metadata.sequence.stream % 3 == 0:
                    await msg.ack_sync()
                    acks.add(msg.metadata.sequence.stream)
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


def assert_in_order_and_complete(seen: list[Delivery], acked: set[int], total: int) -> None:
    sequences = [d.stream_seq for d in seen]
    assert sequences == sorted(sequences), "a message was handed on after a newer one"
    assert len(sequences) == len(set(sequences)), "a message was handed on twice"
    assert set(sequences) | acked == set(range(1, total + 1))
    assert not set(sequences) & acked


def test_after_a_crash_left_messages_pending_with_the_cpu_loaded(
    ledger: LedgerApplication, server: NatsServer, busy_cpu: None
) -> None:
    total = len(store_envelopes(ledger))
    spec = ConsumerSpec(durable="crash", ack_wait=1.0, batch=50, max_ack_pending=100)
    acked: set[int] = set()
    asyncio.run(leave_some_pending(server.url, spec, rounds=1, acks=acked))
    seen: list[Delivery] = []
    asyncio.run(consume(Settings(nats_url=server.url), spec, seen.append, idle=3.0))
    assert_in_order_and_complete(seen, acked, total)
    assert any(d.delivered > 1 for d in seen)


async def die_after_one_fetch(url: str, spec: ConsumerSpec) -> int:
    """A process that takes a batch and dies before acknowledging any of it."""
    nc = await nats.connect(url)
    try:
        sub = await nc.jetstream().pull_subscribe_bind(durable=spec.durable, stream="HOMELEDGER")
        try:
            return len(await sub.fetch(15, timeout=1))
        except TimeoutError:
            return 0
    finally:
        await nc.close()


def test_while_processes_die_with_messages_pending_with_the_cpu_loaded(
    ledger: LedgerApplication, server: NatsServer, busy_cpu: None
) -> None:
    """Processes on the same durable take a batch and die, one after another, while the
    consumer runs: what they took comes back after the ack wait, after newer messages."""
    total = len(store_envelopes(ledger))
    spec = ConsumerSpec(durable="dying", ack_wait=1.0, batch=10, max_ack_pending=60)
    seen: list[Delivery] = []
    taken: list[int] = []

    async def both() -> None:
        await ensure_consumer_only(server.url, spec)
        consumer = asyncio.ensure_future(
            consume(Settings(nats_url=server.url), spec, slow(seen), idle=3.0)
        )
        for _ in range(6):
            taken.append(await die_after_one_fetch(server.url, spec))
            await asyncio.sleep(0.3)
        await consumer

    asyncio.run(both())
    assert sum(taken) > 0, "no process took anything before dying"
    assert_in_order_and_complete(seen, set(), total)
    assert any(d.delivered > 1 for d in seen)


def slow(seen: list[Delivery]) -> Callable[[Delivery], Any]:
    """A handler that is sometimes slower than the ack wait (under load, it would be)."""

    async def handle(delivery: Delivery) -> None:
        if delivery.stream_seq % 97 == 0:
            await asyncio.sleep(1.2)
        seen.append(delivery)

    return handle


async def ensure_consumer_only(url: str, spec: ConsumerSpec) -> None:
    nc = await nats.connect(url)
    try:
        await ensure_consumer(nc.jetstream(), "HOMELEDGER", spec)
    finally:
        await nc.close()


@pytest.mark.parametrize("pull_ahead", [False, True], ids=["fetched", "pulled-ahead"])
def test_a_projector_batch_handler_gets_batches_in_order_with_the_cpu_loaded(
    ledger: LedgerApplication, server: NatsServer, busy_cpu: None, pull_ahead: bool
) -> None:
    """Also when the next batch is asked for as soon as a full one arrives (`project`
    does so), so that JetStream delivers it while this one is handled."""
    total = len(store_envelopes(ledger))
    spec = ConsumerSpec(durable="batches", ack_wait=1.0, batch=25, max_ack_pending=75)
    acked: set[int] = set()
    asyncio.run(leave_some_pending(server.url, spec, rounds=2, acks=acked))
    seen: list[Delivery] = []
    asyncio.run(consume(Settings(nats_url=server.url), spec, _unused, idle=3.0,
                        batch_handler=seen.extend, pull_ahead=pull_ahead))  # fmt: skip
    assert_in_order_and_complete(seen, acked, total)


def test_messages_pulled_ahead_are_handed_back_when_the_consumer_stops(
    ledger: LedgerApplication, server: NatsServer
) -> None:
    """A consumer that stops after a batch had asked for the next one, which reached this
    process but was never fetched, hands it back at once (nak): the next consumer on
    the durable gets everything after the handled batch, in order, without waiting
    for the ack wait (two minutes here)."""
    total = len(store_envelopes(ledger))
    spec = ConsumerSpec(durable="stopped", ack_wait=120.0, batch=20, max_ack_pending=40)
    handled: list[Delivery] = []

    async def run_one_batch() -> None:
        client = await nats.connect(server.url)
        stop = asyncio.Event()
        try:

            def delivered_ahead() -> int:  # to this client, not fetched yet
                return sum(sub._pending_queue.qsize() for sub in client._subs.values())

            async def handle_then_stop(deliveries: list[Delivery]) -> None:
                handled.extend(deliveries)
                for _ in range(1500):  # until the next batch reached this client (bounded)
                    if delivered_ahead() >= spec.batch:
                        break
                    await asyncio.sleep(0.02)
                assert delivered_ahead() >= spec.batch, "nothing was pulled ahead"
                stop.set()

            loop = ConsumerLoop(client, client.jetstream(), "HOMELEDGER", spec, _unused,
                                batch_handler=handle_then_stop, pull_ahead=True)  # fmt: skip
            await loop.run(stop=stop)
        finally:
            await client.close()

    asyncio.run(run_one_batch())
    assert [d.stream_seq for d in handled] == list(range(1, spec.batch + 1))
    rest: list[Delivery] = []
    # Bounded well below the ack wait: messages left unacknowledged would hold it up.
    asyncio.run(asyncio.wait_for(
        consume(Settings(nats_url=server.url), spec, rest.append, idle=3.0), 60))
    assert [d.stream_seq for d in rest] == list(range(spec.batch + 1, total + 1))
    assert {d.delivered for d in rest[: spec.batch]} == {2}  # handed back, delivered again


def _unused(delivery: Delivery) -> None:
    raise AssertionError("batches only")
