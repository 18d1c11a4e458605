"""Looking after the stream with homeledger alone: `stream info`, `consumers list|remove`,
ad-hoc `subscribe` without a durable (nothing left behind), and a stream that no one can
purge or delete from (deny-purge, deny-delete), also when it existed before."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
from collections.abc import Callable

import nats
import nats.js.errors
import pytest
from nats.js.api import ConsumerInfo, StorageType, StreamConfig

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.consumer import EPHEMERAL_INACTIVE
from homeledger.adapters.nats_server import NatsServer
from homeledger.cli.render import FORMATS
from tests.helpers import one_line, wait_until
from tests.nats_helpers import (
    cli_env,
    invoke,
    read_stream,
    spawn_cli,
    store_envelopes,
)
from tests.workers import stopped

pytestmark = pytest.mark.nats


@pytest.fixture
def relayed(ledger: LedgerApplication, env: dict[str, str]) -> LedgerApplication:
    result = invoke(["relay", "--once"], env)
    assert result.exit_code == 0, result.output
    return ledger


def consumers(env: dict[str, str]) -> list[dict[str, object]]:
    result = invoke(["--format", "json", "consumers", "list"], env)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


async def _stream_call(url: str, call: Callable[..., object]) -> object:
    nc = await nats.connect(url)
    try:
        return await call(nc.jetstream(timeout=5))  # type: ignore[misc]
    finally:
        await nc.close()


def on_stream(url: str, call: Callable[..., object]) -> object:
    return asyncio.run(_stream_call(url, call))


# stream info


def test_stream_info_shows_config_state_and_the_last_position_in_every_format(
    relayed: LedgerApplication, env: dict[str, str]
) -> None:
    head = relayed.store.max_position()
    count = len(store_envelopes(relayed))
    info = json.loads(invoke(["--format", "json", "stream", "info"], env).stdout)
    assert info["stream"] == "HOMELEDGER"
    assert info["subjects"] == ["homeledger.events.>"]
    assert (info["storage"], info["retention"], info["replicas"]) == ("file", "limits", 1)
    assert (info["deny_delete"], info["deny_purge"], info["allow_rollup"]) == (True, True, False)
    assert (info["messages"], info["first_seq"], info["last_seq"]) == (count, 1, count)
    assert info["bytes"] > 0 and info["consumers"] == 0
    assert (info["last_position"], info["last_type"]) == (head, "LedgerSealed")
    assert info["duplicate_window"] == 600
    assert json.loads(invoke(["--format", "jsonl", "stream", "info"], env).stdout) == info
    rows = list(csv.DictReader(io.StringIO(invoke(["--format", "csv", "stream", "info"],
                                                  env).stdout)))  # fmt: skip
    assert len(rows) == 1 and rows[0]["subjects"] == "homeledger.events.>"
    assert rows[0]["last_position"] == str(head)
    table = invoke(["stream", "info"], env).stdout.splitlines()
    assert "subjects          homeledger.events.>" in table
    assert f"last_position     {head}" in table


def test_stream_info_without_a_stream_or_a_server_is_exit_4_in_one_line(
    ledger: LedgerApplication, env: dict[str, str], sqlite_url: str
) -> None:
    missing = invoke(["stream", "info"], env)
    assert missing.exit_code == 4
    assert "stream HOMELEDGER does not exist" in one_line(missing.stderr)
    away = invoke(["consumers", "list"], cli_env(sqlite_url, "nats://127.0.0.1:1"))
    assert away.exit_code == 4 and "unreachable" in one_line(away.stderr)


# consumers list / remove


def test_consumers_list_shows_each_durable_and_how_far_it_got(
    relayed: LedgerApplication, env: dict[str, str]
) -> None:
    empty = invoke(["consumers", "list"], env)
    assert empty.stdout.strip() == "stream HOMELEDGER has no consumers"
    assert consumers(env) == []
    assert invoke(["subscribe", "--durable", "feed", "--max", "3"], env).exit_code == 0
    assert invoke(["subscribe", "--durable", "late", "--max", "1", "--from-position", "10",
                   "--subject", "homeledger.events.*.gw-bissau-village"], env).exit_code == 0
    total = len(store_envelopes(relayed))
    rows = {row["name"]: row for row in consumers(env)}
    assert rows["feed"] == rows["feed"] | {
        "kind": "durable", "filter": "homeledger.events.>", "from_position": 1,
        "delivered_seq": 3, "acked_seq": 3, "ack_pending": 0, "pending": total - 3,
    }  # fmt: skip
    assert rows["late"]["filter"] == "homeledger.events.*.gw-bissau-village"
    assert rows["late"]["from_position"] == 10
    for fmt in FORMATS:
        result = invoke(["--format", fmt, "consumers", "list"], env)
        assert result.exit_code == 0 and "feed" in result.stdout and "late" in result.stdout
    csv_rows = list(csv.DictReader(io.StringIO(invoke(["--format", "csv", "consumers", "list"],
                                                      env).stdout)))  # fmt: skip
    assert [row["name"] for row in csv_rows] == ["feed", "late"]


def test_consumers_remove_deletes_a_durable_so_it_can_start_over(
    relayed: LedgerApplication, env: dict[str, str]
) -> None:
    assert invoke(["subscribe", "--durable", "feed", "--max", "2"], env).exit_code == 0
    refused = invoke(["subscribe", "--durable", "feed", "--max", "1",
                      "--subject", "homeledger.events.FundsAllocated.*"], env)  # fmt: skip
    assert refused.exit_code == 2
    assert "homeledger consumers remove feed" in one_line(refused.stderr)
    removed = invoke(["--format", "json", "consumers", "remove", "feed"], env)
    assert json.loads(removed.stdout) == {"stream": "HOMELEDGER", "removed": "feed"}
    assert consumers(env) == []
    again = invoke(["--format", "jsonl", "subscribe", "--durable", "feed", "--idle", "0.5",
                    "--subject", "homeledger.events.FundsAllocated.*"], env)  # fmt: skip
    assert again.exit_code == 0 and len(again.stdout.splitlines()) == 2
    assert len(read_stream(env["HOMELEDGER_NATS_URL"])) == len(store_envelopes(relayed))


@pytest.mark.parametrize(("name", "why"), [("nobody", "has no consumer 'nobody'"),
                                           ("bad name", "consumer name"),
                                           ("a.b", "consumer name"), ("*", "consumer name")],
                         ids=["missing", "space", "dot", "wildcard"])  # fmt: skip
def test_consumers_remove_of_what_is_not_there_is_exit_2_and_removes_nothing(
    relayed: LedgerApplication, env: dict[str, str], name: str, why: str
) -> None:
    assert invoke(["subscribe", "--durable", "keep", "--max", "1"], env).exit_code == 0
    result = invoke(["consumers", "remove", name], env)
    assert result.exit_code == 2
    assert why in one_line(result.stderr)
    assert [row["name"] for row in consumers(env)] == ["keep"]


# subscribe without --durable


def test_subscribe_without_a_durable_reads_everything_and_leaves_nothing_behind(
    relayed: LedgerApplication, env: dict[str, str]
) -> None:
    envelopes = store_envelopes(relayed)
    everything = invoke(["--format", "json", "subscribe", "--idle", "0.5"], env)
    assert everything.exit_code == 0, everything.output
    assert json.loads(everything.stdout) == [e.to_dict() for e in envelopes]
    late = invoke(["--format", "jsonl", "subscribe", "--max", "3", "--from-position", "10"],
                  env)  # fmt: skip
    assert [json.loads(line)["position"] for line in late.stdout.splitlines()] == \
        [e.position for e in envelopes if e.position >= 10][:3]  # fmt: skip
    again = invoke(["--format", "jsonl", "subscribe", "--max", "2"], env)  # starts over
    assert [json.loads(line)["position"] for line in again.stdout.splitlines()] == \
        [e.position for e in envelopes[:2]]  # fmt: skip
    assert consumers(env) == []


def test_a_following_subscriber_is_ephemeral_and_gone_after_sigterm(
    relayed: LedgerApplication, env: dict[str, str], server: NatsServer
) -> None:
    process = spawn_cli(["--format", "jsonl", "subscribe"], env)
    try:
        wait_until(lambda: len(consumers(env)) == 1, 20, "the subscriber's consumer")
        (row,) = consumers(env)
        assert row["kind"] == "ephemeral"
        info = on_stream(server.url, lambda js: js.consumer_info("HOMELEDGER", row["name"]))
        assert isinstance(info, ConsumerInfo)
        # Removed by the server itself should the process die without deleting it.
        assert info.config.inactive_threshold == EPHEMERAL_INACTIVE
        assert info.config.mem_storage and info.config.durable_name is None
    finally:
        _, err = stopped(process, signal.SIGTERM)
    assert process.returncode == 0, err
    assert consumers(env) == []


# deny-purge and deny-delete


def test_an_existing_stream_is_brought_to_deny_purge_and_deny_delete(
    ledger: LedgerApplication, env: dict[str, str], server: NatsServer
) -> None:
    old = StreamConfig(name="HOMELEDGER", subjects=["homeledger.events.>"],
                       storage=StorageType.FILE, allow_rollup_hdrs=True)  # fmt: skip
    on_stream(server.url, lambda js: js.add_stream(old))
    assert invoke(["relay", "--once"], env).exit_code == 0
    info = json.loads(invoke(["--format", "json", "stream", "info"], env).stdout)
    assert (info["deny_delete"], info["deny_purge"], info["allow_rollup"]) == (True, True, False)
    count = len(store_envelopes(ledger))
    for attempt in (lambda js: js.purge_stream("HOMELEDGER"),
                    lambda js: js.delete_msg("HOMELEDGER", 1)):  # fmt: skip
        with pytest.raises(nats.js.errors.APIError):
            on_stream(server.url, attempt)
    unprotect = StreamConfig(name="HOMELEDGER", subjects=["homeledger.events.>"],
                             storage=StorageType.FILE)  # fmt: skip
    with pytest.raises(nats.js.errors.APIError):  # JetStream keeps the protections on
        on_stream(server.url, lambda js: js.update_stream(unprotect))
    assert len(read_stream(server.url)) == count
