"""Crash and fault tests: processes killed with SIGKILL at random moments, then restarted.

Each ends with the same check: the stream holds every stored event exactly once, in
store order, with Msg-Ids and payloads equal to the store's.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import cluster_url, start_cluster
from tests.nats_helpers import (
    assert_exactly_once_in_order,
    cli_env,
    read_stream,
    record_bulk,
    record_story,
    run_cli,
    running_server,
    spawn_cli,
    store_envelopes,
    stream_count,
)

pytestmark = [pytest.mark.nats, pytest.mark.slow]

EVENTS = 12_000


@pytest.fixture
def big_ledger(make_app: Callable[..., LedgerApplication], sqlite_url: str) -> LedgerApplication:
    app = make_app(sqlite_url)
    record_story(app)
    record_bulk(app, EVENTS)
    return app


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def finish(process: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def test_relay_killed_at_random_moments_leaves_each_event_once_in_order(
    big_ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(20210701)
    total = len(store_envelopes(big_ledger))
    kills = 0
    with running_server(tmp_path / "nats") as server:
        env = cli_env(sqlite_url, server.url)
        while kills < 6:
            start = stream_count(server.url)
            relay = spawn_cli(["relay", "--once", "--window", str(rng.choice([100, 250, 500]))],
                              env)  # fmt: skip
            target = min(total - 1, start + rng.randint(200, 2000))
            while relay.poll() is None and stream_count(server.url) < target:
                time.sleep(rng.uniform(0.0, 0.02))
            relay.kill()
            finish(relay)
            kills += 1
            if stream_count(server.url) >= total - 1:
                break
        final = run_cli(["relay", "--once"], env)
        assert final.returncode == 0, final.stderr
        messages = read_stream(server.url)
    assert kills >= 4
    assert_exactly_once_in_order(messages, store_envelopes(big_ledger))


def test_nats_server_killed_mid_backlog_and_restarted_on_the_same_store(
    big_ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    with running_server(tmp_path / "nats") as server:
        env = cli_env(sqlite_url, server.url)
        relay = spawn_cli(["relay", "--once", "--ack-timeout", "1"], env)
        for threshold in (2500, 7000):

            def reached(at_least: int = threshold) -> bool:
                return stream_count(server.url) >= at_least

            wait_for(reached, 60, f"{threshold} events")
            server.kill()
            time.sleep(0.3)
            server.start()
        code, err = finish(relay)
        assert code == 0, err
        messages = read_stream(server.url)
    assert_exactly_once_in_order(messages, store_envelopes(big_ledger))


def test_cluster_leader_killed_mid_relay_the_relay_carries_on(
    make_app: Callable[..., LedgerApplication], sqlite_url: str, tmp_path: Path
) -> None:
    app = make_app(sqlite_url)
    record_story(app)
    record_bulk(app, 8000)
    servers = start_cluster(tmp_path / "cluster")
    try:
        url = cluster_url(servers)
        env = cli_env(sqlite_url, url)
        relay = spawn_cli(["relay", "--once", "--replicas", "3", "--ack-timeout", "2"], env)
        wait_for(lambda: stream_count(url) >= 2500, 60, "2500 events")
        leader = asyncio.run(stream_leader(url))
        dead = next(s for s in servers if s.name == leader)
        dead.kill()
        code, err = finish(relay, timeout=120)
        assert code == 0, err
        survivors = cluster_url([s for s in servers if s is not dead])
        assert asyncio.run(stream_leader(survivors)) != leader
        messages = read_stream(survivors)
    finally:
        for server in servers:
            server.stop()
    assert_exactly_once_in_order(messages, store_envelopes(app))


async def stream_leader(url: str) -> str:
    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info("HOMELEDGER")
        assert info.cluster is not None and info.config.num_replicas == 3
        return str(info.cluster.leader)
    finally:
        await nc.close()


async def ack_floor(url: str, durable: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("HOMELEDGER", durable)
        return int(info.ack_floor.stream_seq) if info.ack_floor else 0
    finally:
        await nc.close()


def test_subscriber_killed_mid_stream_resumes_where_it_acknowledged(
    big_ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    positions = [e.position for e in store_envelopes(big_ledger)]
    with running_server(tmp_path / "nats") as server:
        env = cli_env(sqlite_url, server.url)
        assert run_cli(["relay", "--once"], env).returncode == 0
        args = ["--format", "jsonl", "subscribe", "--durable", "reader", "--ack-wait", "2",
                "--batch", "50"]  # fmt: skip
        printed = tmp_path / "first.jsonl"
        with printed.open("w") as out:
            subscriber = spawn_cli(args, env, out=out)
            wait_for(lambda: printed.read_bytes().count(b"\n") >= 3000, 60, "3000 printed events")
            subscriber.kill()
            finish(subscriber)
        time.sleep(0.2)
        floor = asyncio.run(ack_floor(server.url, "reader"))
        first = [json.loads(line)["position"] for line in printed.read_text().splitlines()
                 if line.endswith("}")]  # fmt: skip
        resumed = run_cli([*args, "--idle", "1"], env)
        assert resumed.returncode == 0, resumed.stderr
    second = [json.loads(line)["position"] for line in resumed.stdout.splitlines()]
    assert 2000 <= floor < len(positions)
    assert first[:floor] == positions[:floor]  # printed before acknowledging
    assert second == positions[floor:]  # resumes right after its last acknowledgement
