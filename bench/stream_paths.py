"""The CLI paths that touch NATS, each against its raw baseline in the same run.

    python -m bench stream-paths [--quick] [--repeat N]

For each size of the allocation-heavy shape (bench/shapes.py), on SQLite, a store is
built once with `homeledger import` and copied for every run; a nats-server on
loopback (file storage) is started for each run. In a fresh process each
(`homeledger ...`, start-up included, peak RSS by GNU time):

    relay    `relay --once`: every stored event published in store order and
             acknowledged, against nats-py `publish_async` of the same payloads and
             headers in windows of 1,000 (messages built before the clock starts);
    project  `project --from-nats --durable NAME --once` into a new database, against
             a nats-py durable pull consumer that fetches (200 at a time, the CLI's
             default batch) and acknowledges every message;
    witness  `verify --against-nats`, against the sum of `verify` (run just before, on
             the same store, its read models up to date) and a raw read of the whole
             stream (nats-py ephemeral pull consumer, no acknowledgements, 1,000 per
             fetch). Its ratio is that sum over its time: 1 / 1.3 = 0.77 is the target.

Rates are events per second; ratios homeledger's rate over the baseline's. Timings are
measurements, never checks.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench.consumer import raw_fetch_ack
from bench.paths import timed_cli
from bench.relay import publish_raw
from bench.shapes import allocation_heavy, write_jsonl
from homeledger.adapters.nats_messages import message_for
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store

STREAM = "HOMELEDGER"  # the CLI's default stream
WINDOW = 1000
TARGETS = {"relay": 0.85, "project": 0.5, "witness": round(1 / 1.3, 3)}


def built_store(commands: int, folder: Path) -> Path:
    """An SQLite store of `commands` allocation-heavy facts, recorded by the CLI, as one
    file (its write-ahead log folded in) to copy for each run."""
    file = write_jsonl(folder / f"stream-commands-{commands}.jsonl", allocation_heavy(commands))
    path = folder / f"stream-store-{commands}.db"
    timed_cli(f"sqlite:///{path}", "import", str(file))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


async def raw_publish(store_url: str, nats_url: str) -> tuple[int, float]:
    """(messages, seconds) of nats-py publish_async of the store's messages, built first."""
    store = open_store(Settings(store=store_url))
    try:
        messages = [message_for(e) for e in store.envelopes()]
    finally:
        store.close()
    return len(messages), await publish_raw(nats_url, messages, WINDOW, wait=30)


async def raw_stream_read(nats_url: str, stream: str) -> tuple[int, float]:
    """(messages, seconds) to read the whole stream once without acknowledgements."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        started = time.perf_counter()
        last = int((await js.stream_info(stream)).state.last_seq)
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                                inactive_threshold=30.0, mem_storage=True)  # fmt: skip
        sub = await js.pull_subscribe("homeledger.events.>", stream=stream, config=config)
        seq = seen = 0
        while seq < last:
            messages = await sub.fetch(WINDOW, timeout=10)
            seen += len(messages)
            seq = messages[-1].metadata.sequence.stream
        seconds = time.perf_counter() - started
        await sub.unsubscribe()
    finally:
        await nc.close()
    return seen, seconds


def one_run(template: Path, folder: Path) -> dict[str, tuple[float, float, float | None]]:
    """path -> (baseline events/s, homeledger events/s, peak RSS MB) of one run."""
    for leftover in folder.glob("run*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    path = folder / "run.db"
    shutil.copy(template, path)
    url = f"sqlite:///{path}"
    found: dict[str, tuple[float, float, float | None]] = {}
    with NatsServer(folder / "run-nats") as server:
        nats_args = ("--nats", server.url)
        count, raw = asyncio.run(raw_publish(url, server.url))
        seconds, rss = timed_cli(url, *nats_args, "relay", "--once")
        found["relay"] = (count / raw, count / seconds, rss)

        timed_cli(url, "replay")  # verify's read models up to date, not timed
        verify_seconds, _ = timed_cli(url, "verify")
        _, read_seconds = asyncio.run(raw_stream_read(server.url, STREAM))
        seconds, rss = timed_cli(url, *nats_args, "verify", "--against-nats")
        found["witness"] = (count / (verify_seconds + read_seconds), count / seconds, rss)

        raw_rate = asyncio.run(raw_fetch_ack(server.url, STREAM, count))
        target = f"sqlite:///{folder / 'run-projected.db'}"
        seconds, rss = timed_cli(target, *nats_args, "project", "--from-nats", "--durable",
                                 "bench-hl", "--once")  # fmt: skip
        found["project"] = (raw_rate, count / seconds, rss)
    return found


def measure(commands: int, folder: Path, repeat: int) -> list[dict[str, Any]]:
    """The three paths at one size, `repeat` runs each (median); one row per path."""
    template = built_store(commands, folder)
    runs: dict[str, list[tuple[float, float, float | None]]] = {}
    work = folder / f"stream-{commands}"
    work.mkdir(exist_ok=True)
    for _ in range(repeat):
        for name, result in one_run(template, work).items():
            runs.setdefault(name, []).append(result)
    return [_row(name, commands, results) for name, results in runs.items()]


def _row(path: str, commands: int,
         results: list[tuple[float, float, float | None]]) -> dict[str, Any]:  # fmt: skip
    base = sorted(r[0] for r in results)[len(results) // 2]
    ours = sorted(r[1] for r in results)[len(results) // 2]
    peaks = [r[2] for r in results if r[2] is not None]
    return {
        "path": path, "store": "sqlite", "commands": commands,
        "baseline_per_s": round(base), "homeledger_per_s": round(ours),
        "ratio": round(ours / base, 3), "target": TARGETS[path],
        "peak_rss_mb": round(max(peaks), 1) if peaks else None,
        "runs": [round(r[1]) for r in results], "baseline_runs": [round(r[0]) for r in results],
    }  # fmt: skip
