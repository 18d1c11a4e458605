"""Crash and fault tests: processes killed with SIGKILL at random moments, then restarted.

Each ends with the same check: the stream holds every stored event exactly once, in
store order, with Msg-Ids and payloads equal to the store's.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from pathlib import Path

import nats
import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import cluster_url, start_cluster
from tests.helpers import MakeApp, wait_until
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
from tests.workers import kill_midway

pytestmark = [pytest.mark.nats, pytest.mark.slow]

EVENTS = 12_000
KILLS = 6
BACKLOG = 2_000  # at least this many events left to publish when a relay starts


@pytest.fixture
def big_ledger(make_app: MakeApp, sqlite_url: str) -> LedgerApplication:
    app = make_app(sqlite_url)
    record_story(app)
    record_bulk(app, EVENTS)
    return app


def finish(process: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def test_relay_killed_at_random_moments_leaves_each_event_once_in_order(
    big_ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(20210701)
    kills = attempts = 0
    with running_server(tmp_path / "nats") as server:
        env = cli_env(sqlite_url, server.url)
        while kills < KILLS:
            attempts += 1
            assert attempts <= 4 * KILLS, f"{kills} relays of {attempts - 1} killed midway"
            start = stream_count(server.url)
            if big_ledger.store.max_position() - start < BACKLOG:  # always work to kill it in
                record_bulk(big_ledger, BACKLOG)
            end = big_ledger.store.max_position()
            relay = spawn_cli(["relay", "--once", "--window", str(rng.choice([100, 250, 500]))],
                              env)  # fmt: skip
            target = start + rng.randint(200, (end - start) // 2)
            kills += kill_midway(relay, lambda: stream_count(server.url), target, end)
        final = run_cli(["relay", "--once"], env)
        assert final.returncode == 0, final.stderr
        messages = read_stream(server.url)
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

            wait_until(reached, 60, f"{threshold} events")
            server.kill()  # reaped: its ports and store are free again
            server.start()
        code, err = finish(relay)
        assert code == 0, err
        messages = read_stream(server.url)
    assert_exactly_once_in_order(messages, store_envelopes(big_ledger))


def test_cluster_leader_killed_mid_relay_the_relay_carries_on(
    make_app: MakeApp, sqlite_url: str, tmp_path: Path
) -> None:
    app = make_app(sqlite_url)
    record_story(app)
    record_bulk(app, 8000)
    servers = start_cluster(tmp_path / "cluster")
    try:
        url = cluster_url(servers)
        env = cli_env(sqlite_url, url)
        relay = spawn_cli(["relay", "--once", "--replicas", "3", "--ack-timeout", "2"], env)
        wait_until(lambda: stream_count(url) >= 2500, 60, "2500 events")
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
            wait_until(lambda: printed.read_bytes().count(b"\n") >= 3000, 60, "3000 printed events")
            subscriber.kill()
            finish(subscriber)
        # Once the server has dropped the dead connection, it has read every ack it sent.
        wait_until(lambda: server.varz("/connz")["num_connections"] == 0, 60,
                   "the server to drop the killed subscriber")  # fmt: skip
        floor = asyncio.run(ack_floor(server.url, "reader"))
        first = [json.loads(line)["position"] for line in printed.read_text().splitlines()
                 if line.endswith("}")]  # fmt: skip
        # Until every event after the floor came (those it had not acknowledged come again
        # once their ack wait is out); the idle time only bounds a hang.
        resumed = run_cli([*args, "--max", str(len(positions) - floor), "--idle", "60"], env)
        assert resumed.returncode == 0, resumed.stderr
    second = [json.loads(line)["position"] for line in resumed.stdout.splitlines()]
    assert 2000 <= floor < len(positions)
    assert first[:floor] == positions[:floor]  # printed before acknowledging
    assert second == positions[floor:]  # resumes right after its last acknowledgement
