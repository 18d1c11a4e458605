"""The NATS contract (docs/nats.md) against real nats-server processes on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.consumer import ConsumerSpec, Delivery, consume, ensure_consumer
from homeledger.adapters.nats_messages import (
    CONTENT_TYPE,
    EVENT_TYPE,
    EXPECTED_LAST_SEQUENCE,
    MSG_ID,
    POSITION,
    SCHEMA_VERSION,
)
from homeledger.adapters.nats_server import Auth, NatsServer, Tls, free_port
from homeledger.adapters.relay_position import RelayPosition
from homeledger.adapters.schema import all_schemas
from homeledger.adapters.settings import Settings
from homeledger.domain.events import EVENTS
from tests.helpers import one_line, wait_until
from tests.nats_helpers import (
    assert_exactly_once_in_order,
    cli_env,
    invoke,
    make_tls,
    read_stream,
    record_bulk,
    running_server,
    spawn_cli,
    store_envelopes,
    stream_count,
)
from tests.workers import stopped

pytestmark = pytest.mark.nats


# Publishing.


def test_every_event_is_published_with_the_contract_subject_headers_and_payload(
    any_ledger: LedgerApplication, server: NatsServer, any_env: dict[str, str]
) -> None:
    result = invoke(["relay", "--once"], any_env)
    assert result.exit_code == 0, result.output
    envelopes = store_envelopes(any_ledger)
    messages = read_stream(server.url)
    assert_exactly_once_in_order(messages, envelopes)
    schemas = all_schemas()
    for message, envelope in zip(messages, envelopes, strict=True):
        assert message.subject == f"homeledger.events.{envelope.type}.{envelope.scope}"
        assert message.headers == {
            MSG_ID: envelope.event_id,
            EVENT_TYPE: envelope.type,
            POSITION: str(envelope.position),
            SCHEMA_VERSION: str(envelope.schema_version),
            CONTENT_TYPE: "application/json",
            EXPECTED_LAST_SEQUENCE: str(message.seq - 1),
        }
        payload = message.envelope()
        jsonschema.Draft202012Validator(schemas[envelope.type]).validate(payload)
        assert payload == envelope.to_dict()
    assert {e.type for e in envelopes} == set(EVENTS.types())  # seals included
    scopes = {m.subject for m in messages}
    assert "homeledger.events.FundsAllocated.gw-bissau-village" in scopes
    assert "homeledger.events.DonationPledged.2021" in scopes
    assert "homeledger.events.UnitsAcquired.SE" in scopes
    assert "homeledger.events.LedgerSealed.partnership" in scopes
    # A reversal's scope is the reversed fact's: here a disbursement's initiative.
    assert "homeledger.events.FactReversed.gw-bissau-village" in scopes


def test_a_second_relay_publishes_nothing_and_reports_its_checkpoint(
    any_ledger: LedgerApplication, server: NatsServer, any_env: dict[str, str]
) -> None:
    assert invoke(["relay", "--once"], any_env).exit_code == 0
    result = invoke(["--format", "json", "relay", "--once"], any_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["published"] == 0
    assert report["position"] == any_ledger.store.max_position()
    assert RelayPosition(any_ledger.store, "HOMELEDGER").read() == report["position"]
    assert len(read_stream(server.url)) == len(store_envelopes(any_ledger))


def test_a_relay_that_lost_its_checkpoint_resumes_from_the_stream(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str, tmp_path: Path
) -> None:
    """JetStream acknowledged but the checkpoint was never written: nothing is sent twice."""
    record_bulk(ledger, 500)
    copy = tmp_path / "copy.db"  # every fact (the WAL's too), but no checkpoint yet
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(copy) as target:  # fmt: skip
        source.backup(target)
    assert invoke(["relay", "--once"], cli_env(sqlite_url, server.url)).exit_code == 0
    before = read_stream(server.url)
    result = invoke(["--format", "json", "relay", "--once"],
                    cli_env(f"sqlite:///{copy}", server.url))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["published"] == 0
    assert read_stream(server.url) == before


def test_the_relay_follows_new_events_and_stops_on_sigterm(
    any_ledger: LedgerApplication, server: NatsServer, any_env: dict[str, str]
) -> None:
    relay = spawn_cli(["relay", "--poll-interval", "0.05"], any_env)
    try:
        record_bulk(any_ledger, 300, batch=100)
        stored = len(store_envelopes(any_ledger))
        wait_until(lambda: stream_count(server.url) >= stored, 60, "the relay to follow")
    finally:
        _, err = stopped(relay, signal.SIGTERM)
    assert relay.returncode == 0, err
    assert_exactly_once_in_order(read_stream(server.url), store_envelopes(any_ledger))


def test_the_stream_is_created_with_file_storage_and_updated_when_settings_change(
    ledger: LedgerApplication, server: NatsServer, env: dict[str, str]
) -> None:
    assert invoke(["relay", "--once", "--duplicate-window", "60"], env).exit_code == 0
    assert invoke(["relay", "--once"], {**env, "HOMELEDGER_NATS_DUPLICATE_WINDOW": "90"}
                  ).exit_code == 0  # fmt: skip

    async def config() -> StreamConfig:
        nc = await nats.connect(server.url)
        try:
            return (await nc.jetstream().stream_info("HOMELEDGER")).config
        finally:
            await nc.close()

    found = asyncio.run(config())
    assert found.storage == StorageType.FILE
    assert found.subjects == ["homeledger.events.>"]
    assert found.duplicate_window == 90
    assert found.deny_delete and found.deny_purge and not found.allow_rollup_hdrs


def test_a_stream_that_cannot_be_used_is_a_clear_input_error(
    ledger: LedgerApplication, server: NatsServer, env: dict[str, str]
) -> None:
    async def memory_stream() -> None:
        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(StreamConfig(
            name="HOMELEDGER", subjects=["homeledger.events.>"], storage=StorageType.MEMORY))
        await nc.close()

    asyncio.run(memory_stream())
    result = invoke(["relay", "--once"], env)
    assert result.exit_code == 2
    assert "file storage" in one_line(result.stderr)


def test_unreachable_nats_is_exit_4_in_one_line(
    ledger: LedgerApplication, sqlite_url: str
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for args in (["relay", "--once"], ["subscribe", "--durable", "d", "--max", "1"]):
        result = invoke(args, cli_env(sqlite_url, url))
        assert result.exit_code == 4
        assert "unreachable" in one_line(result.stderr)
        assert result.stdout == ""  # no table header before the failure


# Subscribing.


def positions(output: str) -> list[int]:
    return [json.loads(line)["position"] for line in output.splitlines() if line.strip()]


def test_subscribe_filters_by_subject_and_prints_the_envelopes(
    ledger: LedgerApplication, env: dict[str, str]
) -> None:
    assert invoke(["relay", "--once"], env).exit_code == 0
    envelopes = store_envelopes(ledger)
    result = invoke(["--format", "jsonl", "subscribe", "--durable", "gw", "--idle", "0.5",
                     "--subject", "homeledger.events.*.gw-bissau-village"], env)  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = [e.position for e in envelopes if e.scope == "gw-bissau-village"]
    assert positions(result.stdout) == expected and len(expected) >= 4
    result = invoke(["--format", "json", "subscribe", "--durable", "alloc", "--idle", "0.5",
                     "--subject", "homeledger.events.FundsAllocated.*"], env)  # fmt: skip
    printed = json.loads(result.stdout)
    assert printed == [e.to_dict() for e in envelopes if e.type == "FundsAllocated"]
    everything = invoke(["--format", "json", "subscribe", "--durable", "all", "--idle", "0.5"],
                        env)  # fmt: skip
    listed = invoke(["--format", "json", "events", "list"], env)
    assert json.loads(everything.stdout) == json.loads(listed.stdout)
    table = invoke(["subscribe", "--durable", "t", "--max", "3"], env)
    assert table.stdout.splitlines()[0].split()[:3] == ["POSITION", "RECORDED", "AT"]
    assert len(table.stdout.splitlines()) == 4


def test_a_subject_filter_that_nats_would_refuse_is_exit_2_without_a_header(
    sqlite_url: str,
) -> None:
    for subject in ("homeledger.events.>.x", "homeledger.events..x", "homeledger.events.a b",
                    "homeledger.events.Fund*"):  # fmt: skip
        result = invoke(["subscribe", "--durable", "d", "--subject", subject],
                        cli_env(sqlite_url, "nats://127.0.0.1:1"))  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "is not a valid filter" in one_line(result.stderr)
        assert result.stdout == ""


def test_subscribe_resumes_where_it_acknowledged_and_honours_from_position(
    ledger: LedgerApplication, env: dict[str, str]
) -> None:
    assert invoke(["relay", "--once"], env).exit_code == 0
    all_positions = [e.position for e in store_envelopes(ledger)]
    first = invoke(["--format", "jsonl", "subscribe", "--durable", "d", "--max", "5"], env)
    second = invoke(["--format", "jsonl", "subscribe", "--durable", "d", "--max", "5",
                     "--ack-wait", "10"], env)  # editable settings apply to the durable
    rest = invoke(["--format", "jsonl", "subscribe", "--durable", "d", "--idle", "0.5"], env)
    assert positions(first.stdout) + positions(second.stdout) + positions(rest.stdout) \
        == all_positions  # fmt: skip
    late = invoke(["--format", "jsonl", "subscribe", "--durable", "late", "--idle", "0.5",
                   "--from-position", "10"], env)  # fmt: skip
    assert positions(late.stdout) == [p for p in all_positions if p >= 10]


def test_an_existing_durable_with_another_filter_or_start_is_refused(
    ledger: LedgerApplication, env: dict[str, str]
) -> None:
    assert invoke(["relay", "--once"], env).exit_code == 0
    assert invoke(["subscribe", "--durable", "d", "--max", "1"], env).exit_code == 0
    other_filter = invoke(["subscribe", "--durable", "d", "--max", "1",
                           "--subject", "homeledger.events.FundsAllocated.*"], env)  # fmt: skip
    assert other_filter.exit_code == 2
    assert "keeps its filter" in one_line(other_filter.stderr)
    other_start = invoke(["subscribe", "--durable", "d", "--max", "1",
                          "--from-position", "7"], env)  # fmt: skip
    assert other_start.exit_code == 2
    outside = invoke(["subscribe", "--durable", "x", "--subject", "other.>", "--max", "1"], env)
    assert outside.exit_code == 2


def test_the_consumer_hands_on_in_stream_order_after_a_crash_left_events_pending(
    ledger: LedgerApplication, server: NatsServer, env: dict[str, str]
) -> None:
    """A dead consumer acknowledged some of a batch; the rest come first, then newer ones."""
    record_bulk(ledger, 200)
    assert invoke(["relay", "--once"], env).exit_code == 0
    total = len(store_envelopes(ledger))
    spec = ConsumerSpec(durable="crash", ack_wait=1.0, batch=50, max_ack_pending=100)

    async def crash_after_acking_some() -> set[int]:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_consumer(js, "HOMELEDGER", spec)
        sub = await js.pull_subscribe_bind(durable="crash", stream="HOMELEDGER")
        acked = set()
        for msg in await sub.fetch(50, timeout=5):
            if msg.metadata.sequence.stream % 3 == 0 or msg.metadata.sequence.stream <= 10:
                await msg.ack_sync()
                acked.add(msg.metadata.sequence.stream)
        await nc.close()  # without acknowledging the others: as if killed
        return acked

    acked = asyncio.run(crash_after_acking_some())
    seen: list[Delivery] = []
    # Until every event not acknowledged came (redeliveries wait out the ack wait); the
    # idle time only bounds a hang.
    asyncio.run(consume(Settings(nats_url=server.url), spec, seen.append,
                        max_messages=total - len(acked), idle=60))  # fmt: skip
    sequences = [d.stream_seq for d in seen]
    assert sequences == sorted(sequences)
    assert set(sequences) == set(range(1, total + 1)) - acked
    assert any(d.delivered > 1 for d in seen)


def test_a_failing_handler_leaves_its_event_for_the_next_run(
    ledger: LedgerApplication, server: NatsServer, env: dict[str, str]
) -> None:
    assert invoke(["relay", "--once"], env).exit_code == 0
    spec = ConsumerSpec(durable="fails", ack_wait=1.0)
    handled: list[int] = []

    def handler(delivery: Delivery) -> None:
        if delivery.envelope.position == 5 and delivery.delivered == 1:
            raise RuntimeError("projection failed")
        handled.append(delivery.envelope.position)

    settings = Settings(nats_url=server.url)
    with pytest.raises(RuntimeError):
        asyncio.run(consume(settings, spec, handler, idle=60))
    positions = [e.position for e in store_envelopes(ledger)]
    # Until the rest came, the failed one again first (the idle time only bounds a hang).
    asyncio.run(consume(settings, spec, handler, max_messages=len(positions) - len(handled),
                        idle=60))  # fmt: skip
    assert handled == positions


# Security.


@pytest.mark.parametrize(
    ("auth", "right", "wrong", "secret"),
    [
        (Auth(user="relay", password="s3cret-pw"),
         {"HOMELEDGER_NATS_USER": "relay", "HOMELEDGER_NATS_PASSWORD": "s3cret-pw"},
         {"HOMELEDGER_NATS_USER": "relay", "HOMELEDGER_NATS_PASSWORD": "guessed-pw"},
         "guessed-pw"),
        (Auth(token="t0ken-right"), {"HOMELEDGER_NATS_TOKEN": "t0ken-right"},
         {"HOMELEDGER_NATS_TOKEN": "t0ken-wrong"}, "t0ken-wrong"),
        (Auth(token="t0ken-right"), {"HOMELEDGER_NATS_TOKEN": "t0ken-right"}, {}, "t0ken"),
    ],
    ids=["user-password", "token", "no-credentials"],
)  # fmt: skip
def test_credentials_are_required_and_never_printed(
    ledger: LedgerApplication, sqlite_url: str, tmp_path: Path, auth: Auth,
    right: dict[str, str], wrong: dict[str, str], secret: str,
) -> None:  # fmt: skip
    with running_server(tmp_path / "secured", auth=auth) as secured:
        env = cli_env(sqlite_url, secured.url)
        accepted = invoke(["--debug", "relay", "--once"], {**env, **right})
        assert accepted.exit_code == 0, accepted.output
        for args in (["relay", "--once"], ["subscribe", "--durable", "d", "--max", "1"]):
            refused = invoke(args, {**env, **wrong})
            assert refused.exit_code == 4
            # The server may reset the connection before its -ERR is read.
            line = one_line(refused.stderr)
            assert "refused" in line or "closed the connection" in line, line
            assert secret not in refused.output
        flagged = invoke(["--nats-user", "relay", "--nats-password", "flag-pw-9", "relay",
                          "--once"], env)  # fmt: skip
        assert flagged.exit_code == 4 and "flag-pw-9" not in flagged.output


def test_tls_with_the_right_ca_is_accepted_and_an_unknown_certificate_refused(
    ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    files = make_tls(tmp_path / "tls")
    with running_server(tmp_path / "tls-nats", tls=Tls(files.cert, files.key)) as secured:
        env = cli_env(sqlite_url, secured.url)
        accepted = invoke(["relay", "--once"], {**env, "HOMELEDGER_NATS_CA": str(files.ca)})
        assert accepted.exit_code == 0, accepted.output
        printed = invoke(["--format", "jsonl", "--nats-ca", str(files.ca), "subscribe",
                          "--durable", "d", "--max", "2"], env)  # fmt: skip
        assert len(printed.stdout.splitlines()) == 2
        refused = invoke(["relay", "--once"], env)
        assert refused.exit_code == 4
        assert "certificate not trusted" in one_line(refused.stderr)
    missing = invoke(["relay", "--once"], {**env, "HOMELEDGER_NATS_CA": str(tmp_path / "no")})
    assert missing.exit_code == 2
    creds = invoke(["relay", "--once"], {**env, "HOMELEDGER_NATS_CREDS": str(tmp_path / "no")})
    assert creds.exit_code == 2 and "credentials file" in one_line(creds.stderr)
