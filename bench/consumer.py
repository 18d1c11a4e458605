"""Consumer side: nats-py pull fetch + ack against `homeledger project --from-nats`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.relay import Relay, RelayOptions
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.messaging import ONCE_BATCH

# The raw consumer fetches as many at a time as `homeledger project --from-nats --once`
# fetches and commits by default.
BATCH = ONCE_BATCH


async def raw_fetch_ack(url: str, stream: str, events: int) -> float:
    """msgs/s of a durable pull consumer that fetches and acknowledges every message."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("homeledger.events.>", durable="bench-raw", stream=stream)
        started, seen = time.perf_counter(), 0
        while seen < events:
            for msg in await sub.fetch(min(BATCH, events - seen), timeout=5):
                await msg.ack()
                seen += 1
        await nc.flush()
        return seen / (time.perf_counter() - started)
    finally:
        await nc.close()


def measure_consumer_side(store_url: str, folder: Path, events: int) -> tuple[float, float]:
    """(raw msgs/s, homeledger msgs/s) over one stream filled by the relay."""
    from bench.suite import cli

    folder.mkdir(parents=True, exist_ok=True)
    with NatsServer(folder / "nats") as server:
        settings = Settings(store=store_url, nats_url=server.url)
        store = open_store(settings)
        asyncio.run(Relay(store, settings, RelayOptions()).run(once=True))
        store.close()
        raw = asyncio.run(raw_fetch_ack(server.url, settings.stream, events))
        target = f"sqlite:///{folder / 'projected.db'}"
        started = time.perf_counter()
        cli(target, "--nats", server.url, "project", "--from-nats", "--durable", "bench-hl",
            "--once")
        projected = events / (time.perf_counter() - started)
    return raw, projected
