"""Consumer-side projections (`project --from-nats`), `verify --against-nats` and the
NATS `events tail`, against real nats-server processes and real stores.

(That every published payload validates against `homeledger schema` is tested in
test_nats.py, on SQLite and PostgreSQL.)
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.envelope import Envelope
from homeledger.adapters.nats_messages import message_for
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.nats_stream import StreamSpec, ensure_stream
from homeledger.adapters.settings import store_location
from homeledger.domain import reference_case
from homeledger.domain.commands import AcquireUnits
from tests.forger import next_fact, publish_raw, raw_events
from tests.helpers import MakeApp, record, wait_until
from tests.nats_helpers import (
    cli_env,
    invoke,
    record_bulk,
    spawn_cli,
    store_envelopes,
)
from tests.workers import first_line_while, kill_midway, reaped, stopped

pytestmark = pytest.mark.nats

LATER = date(2022, 6, 1)
READS = [
    ("balances", "--by", "year"),
    ("balances", "--by", "initiative"),
    ("balances", "--by", "country"),
    ("balances", "--by", "initiative", "--as-of-position", "60"),
    ("trial-balance",),
    ("portfolio", "--on", "2021-12-31"),
    ("audit", "gw-bissau-village"),
    ("audit", "nl-siblings-together", "--as-of-position", "80"),
    ("report", "--year", "2021"),
]


@pytest.fixture
def reference_ledger(make_app: MakeApp, store_url: str) -> LedgerApplication:
    """The reference case, sealed, on SQLite and on PostgreSQL."""
    app = make_app(store_url, actor="ops@example.org")
    record(app, reference_case.commands())
    app.seal()
    return app


@pytest.fixture
def consumer_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The consumer's own database, of the same kind as the ledger's."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'consumer.db'}"
    return str(request.getfixturevalue("pg_url"))  # another fresh database


def ok(args: list[str], env: dict[str, str]) -> str:
    """What the command printed on stdout (as-of answers say where they stand on stderr)."""
    result = invoke(args, env)
    assert result.exit_code == 0, result.output
    return result.stdout


def project(env: dict[str, str], consumer: str, durable: str = "c1",
            *extra: str) -> dict[str, Any]:  # fmt: skip
    out = ok(["--store", consumer, "--format", "json", "project", "--from-nats",
              "--durable", durable, "--once", *extra], env)  # fmt: skip
    return dict(json.loads(out))


def read(env: dict[str, str], store: str, args: tuple[str, ...]) -> Any:
    return json.loads(ok(["--store", store, "--format", "json", *args], env))


def tables(url: str) -> set[str]:
    location = store_location(url)
    if location.kind == "sqlite":
        with closing(sqlite3.connect(location.path)) as db, db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {r[0] for r in rows}
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT table_name FROM information_schema.tables "
                             "WHERE table_schema = 'public'").fetchall()  # fmt: skip
        return {r[0] for r in found}


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every consumer-side table, sorted: what a redelivery must not change."""
    names = sorted(t for t in tables(url) if t.startswith(("hl_proj_", "hl_stream_")))
    location = store_location(url)
    if location.kind == "sqlite":
        with closing(sqlite3.connect(location.path)) as db, db:
            return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall()) for n in names}
    with psycopg.connect(url) as conn:
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall()) for n in names}


# Consumer-side projections.


def test_projections_built_from_the_stream_alone_equal_the_stores(
    reference_ledger: LedgerApplication, any_env: dict[str, str], store_url: str, consumer_url: str
) -> None:
    ok(["relay", "--once"], any_env)
    summary = project(any_env, consumer_url)
    head = reference_ledger.store.max_position()
    assert summary["applied"] == head == summary["position"] == summary["events"]
    assert summary["head_hash"] == store_envelopes(reference_ledger)[-1].hash
    # Built without the ledger's events.
    assert not {"stored_events", "homeledger_events"} & tables(consumer_url)
    for args in READS:
        assert read(any_env, consumer_url, args) == read(any_env, store_url, args), args
    figures = read(any_env, consumer_url, ("balances",))
    assert [row["year"] for row in figures] == [2021, 2022]
    assert figures[0]["pledged"] == "11240000.00"


def test_redelivered_and_republished_events_change_nothing(
    reference_ledger: LedgerApplication, server: NatsServer, any_env: dict[str, str],
    consumer_url: str,
) -> None:  # fmt: skip
    ok(["relay", "--once"], any_env)
    project(any_env, consumer_url, "first")
    before = dump(consumer_url)
    # A second durable delivers every event again.
    again = project(any_env, consumer_url, "second")
    count = len(before["hl_stream_events"])
    assert (again["applied"], again["redelivered_unchanged"]) == (0, count)
    # The same envelopes published once more (new Msg-Ids, so JetStream keeps them).
    for envelope in store_envelopes(reference_ledger)[-3:]:
        publish_raw(server.url, f"homeledger.events.{envelope.type}.{envelope.scope}",
                    envelope.to_dict(), {"Nats-Msg-Id": f"again-{envelope.event_id}"})
    third = project(any_env, consumer_url, "first")
    assert (third["applied"], third["redelivered_unchanged"]) == (0, 3)
    assert dump(consumer_url) == before


def max_ack_pending(nats_url: str, durable: str) -> int:
    async def ask() -> int:
        nc = await nats.connect(nats_url, allow_reconnect=False)
        try:
            info = await nc.jetstream().consumer_info("HOMELEDGER", durable)
            return int(info.config.max_ack_pending or 0)
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_new_events_are_applied_where_the_consumer_left_off(
    reference_ledger: LedgerApplication, any_env: dict[str, str], store_url: str, consumer_url: str,
    server: NatsServer,
) -> None:  # fmt: skip
    ok(["relay", "--once"], any_env)
    project(any_env, consumer_url)
    # Catching up (--once), batches of 1,000 by default: up to two in flight.
    assert max_ack_pending(server.url, "c1") == 2000
    reference_ledger.execute(AcquireUnits(country="SE", units=500, on=LATER))
    reference_ledger.seal()
    ok(["relay", "--once"], any_env)
    assert project(any_env, consumer_url)["applied"] == 2
    for args in READS[:3]:
        assert read(any_env, consumer_url, args) == read(any_env, store_url, args), args


def test_a_following_projector_applies_live_events_and_stops_on_sigterm(
    make_app: MakeApp, server: NatsServer, sqlite_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(sqlite_url)
    record(app, reference_case.commands()[:20])
    env = cli_env(sqlite_url, server.url)
    ok(["relay", "--once"], env)
    consumer = f"sqlite:///{tmp_path / 'live.db'}"
    follower = spawn_cli(["--store", consumer, "project", "--from-nats", "--durable", "live"],
                         env, out=subprocess.PIPE)  # fmt: skip
    with reaped(follower):
        app.execute(AcquireUnits(country="FI", units=7, on=LATER))
        ok(["relay", "--once"], env)
        head = app.store.max_position()
        # It cannot say when it applied: look until it has.
        wait_until(lambda: consumer_position(consumer) == head, 60, f"the consumer at {head}")
        # Following, batches of 200 by default (a fetch waits for a full batch or 1 s).
        assert max_ack_pending(server.url, "live") == 400
        out, err = stopped(follower, signal.SIGTERM)
    assert follower.returncode == 0, err
    assert f"up to position {head}" in out


def consumer_position(url: str) -> int | None:
    path = store_location(url).path
    if not Path(path).exists():
        return None
    with closing(sqlite3.connect(path)) as db:
        try:
            row = db.execute("SELECT position FROM hl_stream_head").fetchone()
        except sqlite3.OperationalError:  # not created yet
            return None
    return int(row[0]) if row else None


@pytest.mark.parametrize("how", ["prev-hash", "version-gap", "content", "unknown-type"])
def test_a_stream_that_does_not_continue_the_chain_is_refused(
    reference_ledger: LedgerApplication, server: NatsServer, any_env: dict[str, str],
    consumer_url: str, how: str,
) -> None:  # fmt: skip
    ok(["relay", "--once"], any_env)
    project(any_env, consumer_url)
    before = dump(consumer_url)
    last = store_envelopes(reference_ledger)[-1].to_dict()
    event = next_fact(last, how)
    publish_raw(server.url, "homeledger.events.LedgerSealed.partnership", event,
                {"Nats-Msg-Id": event["event_id"]})
    for _ in range(2):  # refused, and left unacknowledged: refused again
        result = invoke(["--store", consumer_url, "project", "--from-nats", "--durable", "c1",
                         "--once", "--ack-wait", "1"], any_env)  # fmt: skip
        assert result.exit_code == 1, result.output
        assert f"position {event['position']}" in result.output or how == "unknown-type"
        assert "refused to project" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert dump(consumer_url) == before


def test_the_ledgers_own_store_is_refused_as_a_consumer_store(
    reference_ledger: LedgerApplication, any_env: dict[str, str], store_url: str
) -> None:
    ok(["relay", "--once"], any_env)
    result = invoke(["--store", store_url, "project", "--from-nats", "--durable", "c1",
                     "--once"], any_env)  # fmt: skip
    assert result.exit_code == 2
    assert "holds a ledger's events" in result.output
    assert not any(t.startswith("hl_stream_") for t in tables(store_url))


@pytest.mark.slow
def test_a_projector_killed_mid_stream_ends_equal_to_a_clean_build(
    make_app: MakeApp, server: NatsServer, sqlite_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(sqlite_url)
    record(app, reference_case.commands())
    record_bulk(app, 3000)
    env = cli_env(sqlite_url, server.url)
    ok(["relay", "--once"], env)
    killed, clean = f"sqlite:///{tmp_path / 'killed.db'}", f"sqlite:///{tmp_path / 'clean.db'}"
    # Batches of 2, a commit each; runs killed once they applied a random number more,
    # until three were killed while they still had events to apply.
    args = ["--store", killed, "project", "--from-nats", "--durable", "k", "--batch", "2",
            "--ack-wait", "1"]  # fmt: skip
    rng = random.Random(4)
    kills = runs = 0
    while kills < 3:
        assert runs < 9, f"only {kills} of {runs} runs were killed midway"
        applied = consumer_position(killed) or 0
        if app.store.max_position() - applied < 1000:  # always events left to apply
            record_bulk(app, 1000)
            ok(["relay", "--once"], env)
        head = app.store.max_position()
        runs += 1
        kills += kill_midway(spawn_cli(args, env), lambda: consumer_position(killed) or 0,
                             applied + rng.randint(10, 500), head)  # fmt: skip
    applied = len(dump(killed)["hl_stream_events"])
    assert 0 < applied < app.store.max_position(), "not killed mid-stream"
    final = project(env, killed, "k", "--ack-wait", "1")  # the same ack wait as before
    assert final["position"] == app.store.max_position()
    project(env, clean, "clean")
    assert dump(killed) == dump(clean)


# verify --against-nats


def verify_json(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = invoke(["--format", "json", "verify", "--against-nats"], env)
    return result.exit_code, json.loads(result.stdout)


def test_verify_against_nats_passes_on_a_relayed_store(
    reference_ledger: LedgerApplication, any_env: dict[str, str]
) -> None:
    ok(["relay", "--once"], any_env)
    code, report = verify_json(any_env)
    assert code == 0, report
    checks = {c["check"]: c for c in report["checks"]}
    assert {"stream-copy", "stream-head", "stream-projections"} <= set(checks)
    assert all(c["ok"] for c in checks.values())


async def publish_all_but(url: str, envelopes: list[Envelope], skipped: int) -> None:
    """The stream as a relay would publish it, with one stored event left out."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, StreamSpec("HOMELEDGER"))
        for envelope in envelopes:
            if envelope.position != skipped:
                message = message_for(envelope)
                await js.publish(message.subject, message.payload, headers=message.headers)
    finally:
        await client.close()


def test_verify_against_nats_names_relay_lag_as_no_finding(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    env = cli_env(sqlite_url, server.url)
    assert invoke(["relay", "--once"], env).exit_code == 0
    published = ledger.store.max_position()
    for units in (1, 2, 3):
        ledger.execute(AcquireUnits(country="SE", units=units, on=LATER))

    lagging = invoke(["verify", "--against-nats"], env)
    assert lagging.exit_code == 0, lagging.output
    assert f"{published} published" in lagging.stdout
    assert "3 newest not yet published (relay lag)" in lagging.stdout
    assert f"equal the store's at position {published}" in lagging.stdout


def test_verify_against_nats_still_finds_a_gap_in_the_middle(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    asyncio.run(publish_all_but(server.url, store_envelopes(ledger), 5))
    gap = invoke(["verify", "--against-nats"], cli_env(sqlite_url, server.url))
    assert gap.exit_code == 1, gap.output
    assert "stored event missing from the stream" in gap.stdout
    assert "5" in gap.stdout


def delete_newest(url: str, count: int) -> int:
    """Remove the newest stored events straight from the database; the new head."""
    with raw_events(url) as raw:
        head = raw.head() - count
        raw.truncate(head + 1)
    return head


def test_verify_against_nats_sees_the_newest_events_deleted_from_the_store(
    reference_ledger: LedgerApplication, any_env: dict[str, str], store_url: str
) -> None:
    ok(["relay", "--once"], any_env)
    ok(["balances"], any_env)  # the store's projections have seen every event
    reference_ledger.store.close()
    head = delete_newest(store_url, 3)
    assert invoke(["verify"], any_env).exit_code == 1  # the projections are ahead of the store
    code, report = verify_json(any_env)
    assert code == 1
    assert report["first_bad_position"] == head + 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"]  # the chain alone cannot see it
    assert checks["stream-head"]["first_bad_position"] == head + 1
    assert checks["stream-head"]["findings"] == 3
    table = invoke(["verify", "--against-nats"], any_env)
    assert f"first bad position {head + 1}" in table.output


def test_verify_against_nats_sees_the_newest_events_deleted_before_any_projection(
    reference_ledger: LedgerApplication, any_env: dict[str, str], store_url: str
) -> None:
    ok(["relay", "--once"], any_env)
    reference_ledger.store.close()
    head = delete_newest(store_url, 2)
    assert invoke(["verify"], any_env).exit_code == 0  # the database alone cannot tell
    code, report = verify_json(any_env)
    assert code == 1
    assert report["first_bad_position"] == head + 1
    failed = [c["check"] for c in report["checks"] if not c["ok"]]
    assert failed == ["stream-head"]


def test_verify_against_nats_names_an_edited_event(
    reference_ledger: LedgerApplication, any_env: dict[str, str], store_url: str
) -> None:
    ok(["relay", "--once"], any_env)
    target = next(e for e in store_envelopes(reference_ledger) if e.type == "FundsAllocated")
    amount = target.data["amount"]
    reference_ledger.store.close()
    with raw_events(store_url) as raw:
        body = raw.body(target.position)
        body["data"]["amount"] = "9" + amount
        raw.set_body(target.position, body)
    code, report = verify_json(any_env)
    assert code == 1
    assert report["first_bad_position"] == target.position
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["stream-copy"]["first_bad_position"] == target.position
    assert "hash differs" not in checks["stream-copy"]["detail"]  # the content, not the hash
    assert checks["stream-head"]["ok"]


def test_verify_against_nats_unreachable_is_exit_4_in_one_line(
    reference_ledger: LedgerApplication, store_url: str
) -> None:
    env = cli_env(store_url, "nats://127.0.0.1:1")
    result = invoke(["verify", "--against-nats"], env)
    assert result.exit_code == 4
    assert result.output.count("\n") == 1 and "unreachable" in result.output


# events tail


def test_events_tail_follows_new_events_from_nats(
    reference_ledger: LedgerApplication, any_env: dict[str, str]
) -> None:
    ok(["relay", "--once"], any_env)
    head = reference_ledger.store.max_position()
    tail = spawn_cli(["--format", "jsonl", "events", "tail"], any_env, out=subprocess.PIPE)
    with reaped(tail):

        def publish() -> None:
            reference_ledger.execute(AcquireUnits(country="NO", units=3, on=LATER))
            ok(["relay", "--once"], any_env)

        # tail cannot say when it is listening: publish until it shows
        followed = json.loads(first_line_while(tail, publish, "events relayed"))
        assert followed["type"] == "UnitsAcquired"
        assert followed["position"] > head  # only new events, never the backlog
        _, stderr = stopped(tail, signal.SIGTERM)
    assert tail.returncode == 0, stderr
