"""Fixes from the review: each defect against the real store, NATS server and CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path

import nats
import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.envelope import Envelope
from homeledger.adapters.nats_messages import message_for
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.nats_stream import StreamSpec, ensure_stream
from homeledger.adapters.relay_position import RelayPosition
from homeledger.domain.commands import AcquireUnits
from tests.nats_helpers import cli_env, invoke, read_stream, record_story


@pytest.fixture
def ledger(make_app: Callable[..., LedgerApplication], sqlite_url: str) -> LedgerApplication:
    app = make_app(sqlite_url)
    record_story(app)
    return app


def acquire(app: LedgerApplication, units: int = 1) -> None:
    app.execute(AcquireUnits(country="SE", units=units, on=date(2022, 5, 1)))


def backup(url: str, target: Path) -> str:
    """A consistent copy of an SQLite store (its WAL included), as a store URL."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(target) as copy:  # fmt: skip
        source.backup(copy)
    return f"sqlite:///{target}"


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# 1. The relay never skips facts when the stream is ahead of the store.


@pytest.mark.nats
def test_a_relay_on_an_older_copy_of_the_store_refuses_instead_of_skipping(
    make_app: Callable[..., LedgerApplication], ledger: LedgerApplication,
    server: NatsServer, sqlite_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    old_url = backup(sqlite_url, tmp_path / "backup.db")
    acquire(ledger)
    head = ledger.store.max_position()
    assert invoke(["relay", "--once"], cli_env(sqlite_url, server.url)).exit_code == 0
    published = read_stream(server.url)
    assert len(published) == head

    stale = invoke(["relay", "--once"], cli_env(old_url, server.url))
    assert stale.exit_code == 1, stale.output
    line = last_line(stale.stderr)
    assert f"disagree at position {head}" in line and f"ends at {head - 1}" in line

    restored = make_app(old_url)
    acquire(restored, units=2)  # a new fact at the position the stream already holds
    assert restored.store.max_position() == head
    refused = invoke(["relay", "--once"], cli_env(old_url, server.url))
    assert refused.exit_code == 1, refused.output
    assert f"disagree at position {head}" in last_line(refused.stderr)
    assert read_stream(server.url) == published  # nothing published
    position = RelayPosition(restored.store, "HOMELEDGER").read()
    assert position < head  # never advanced past what the stream agrees with


@pytest.mark.nats
def test_a_relay_to_a_stream_of_another_ledger_refuses(
    make_app: Callable[..., LedgerApplication], ledger: LedgerApplication,
    server: NatsServer, tmp_path: Path,
) -> None:  # fmt: skip
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = make_app(other_url)
    record_story(other)
    acquire(other)
    acquire(other)
    assert invoke(["relay", "--once"], cli_env(other_url, server.url)).exit_code == 0
    published = read_stream(server.url)

    mine = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = invoke(["relay", "--once"], cli_env(mine, server.url))
    assert result.exit_code == 1, result.output
    assert "disagree at position" in last_line(result.stderr)
    assert read_stream(server.url) == published


# 2. Unreadable stores are exit 4, bad settings exit 2, an unforeseen failure never 1.


def test_a_file_that_is_not_a_store_is_exit_4_in_one_line(
    ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    text = tmp_path / "notes.db"
    text.write_text("these are someone's notes, not a database\n" * 100)
    truncated = tmp_path / "truncated.db"
    backup(sqlite_url, truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for path in (text, truncated):
        for args in (["events", "stats"], ["pledge", "--year", "2022"], ["verify"]):
            result = invoke(args, cli_env(f"sqlite:///{path}", "nats://127.0.0.1:1"))
            assert result.exit_code == 4, (path, args, result.output)
            assert last_line(result.stderr).startswith("homeledger: store unavailable:")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--stream", "bad.name", "--stream: stream name"),
        ("--stream", "", "--stream: stream name"),
        ("--stream", "a b", "--stream: stream name"),
        ("--stream", "a/b", "--stream: stream name"),
        ("--nats", "foo bar", "--nats: NATS URL"),
        ("--nats", "http://topsecret@127.0.0.1:4222", "--nats: NATS URL 'http://***@"),
        ("--nats", "nats://:4222", "--nats: NATS URL"),
        ("--store", "postgresql://u:topsecret@[::1/x", "store URL"),
        ("--store", "postgresql://u:topsecret@127.0.0.1/x?connect_timeout=bad",
         "connect_timeout"),
        ("--actor", "evil\nactor", "--actor: actor must not contain control characters"),
        ("--actor", "a" * 5000, "--actor: actor is 5000 characters long; at most 200"),
        ("--actor", "   ", "--actor: actor must not be blank"),
    ],
)  # fmt: skip
def test_bad_settings_are_exit_2_in_one_line_and_write_nothing(
    option: str, value: str, expected: str, sqlite_url: str, tmp_path: Path
) -> None:
    for args in (["pledge", "--year", "2021"], ["relay", "--once"],
                 ["verify", "--against-nats"], ["events", "stats"]):  # fmt: skip
        result = invoke([option, value, *args],
                        cli_env(sqlite_url, "nats://127.0.0.1:1"))  # fmt: skip
        assert result.exit_code == 2, (args, result.output)
        line = last_line(result.stderr)
        assert line.startswith("homeledger: invalid input:") and expected in line, line
        assert "topsecret" not in result.output
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_a_subject_filter_that_nats_would_refuse_is_exit_2_without_a_header(
    sqlite_url: str,
) -> None:
    for subject in ("homeledger.events.>.x", "homeledger.events..x", "homeledger.events.a b",
                    "homeledger.events.Fund*"):  # fmt: skip
        result = invoke(["subscribe", "--durable", "d", "--subject", subject],
                        cli_env(sqlite_url, "nats://127.0.0.1:1"))  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "is not a valid filter" in last_line(result.stderr)
        assert result.stdout == ""


def test_an_unforeseen_failure_is_one_line_and_not_the_finding_code() -> None:
    from homeledger.cli.errors import FINDING, INTERNAL, classify

    code, message = classify(RuntimeError("boom\nsecond line"))
    assert (code, message) == (INTERNAL, "internal error: RuntimeError: boom")
    assert INTERNAL != FINDING


# 3. Relay lag is not tampering; a gap in the middle still is.


async def _publish_all_but(url: str, envelopes: list[Envelope], skipped: int) -> None:
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


@pytest.mark.nats
def test_verify_against_nats_names_relay_lag_as_no_finding(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    env = cli_env(sqlite_url, server.url)
    assert invoke(["relay", "--once"], env).exit_code == 0
    published = ledger.store.max_position()
    for units in (1, 2, 3):
        acquire(ledger, units)

    lagging = invoke(["verify", "--against-nats"], env)
    assert lagging.exit_code == 0, lagging.output
    assert f"{published} published" in lagging.stdout
    assert "3 newest not yet published (relay lag)" in lagging.stdout
    assert f"equal the store's at position {published}" in lagging.stdout


@pytest.mark.nats
def test_verify_against_nats_still_finds_a_gap_in_the_middle(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    asyncio.run(_publish_all_but(server.url, list(ledger.store.envelopes()), 5))
    gap = invoke(["verify", "--against-nats"], cli_env(sqlite_url, server.url))
    assert gap.exit_code == 1, gap.output
    assert "stored event missing from the stream" in gap.stdout
    assert "5" in gap.stdout


# 7. Clear chain messages; a repeated import answers as the first did.


def test_two_swapped_rows_name_the_aggregate_version_that_differs(
    ledger: LedgerApplication, sqlite_url: str
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        rows = {row[0]: row[1:] for row in raw.execute(
            "SELECT rowid, topic, state FROM stored_events WHERE rowid IN (7, 8)")}  # fmt: skip
        for target, source in ((7, 8), (8, 7)):
            raw.execute("UPDATE stored_events SET topic = ?, state = ? WHERE rowid = ?",
                        (*rows[source], target))  # fmt: skip
    result = invoke(["verify"], cli_env(sqlite_url, "nats://127.0.0.1:1"))
    assert result.exit_code == 1, result.output
    assert "aggregate_version is 8 where 7 was expected (stored version 7)" in result.stdout
    assert "version 8 where 8" not in result.stdout


def test_a_repeated_import_answers_each_recorded_event_once_as_the_first_time(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = cli_env(sqlite_url, "nats://127.0.0.1:1")
    init = ('{"command": "init", "donor": "D", "beneficiary": "B", "rate": "100.00", '
            '"currency": "EUR", "basis": "year-end", "start": "2021-07-01", '
            '"command_id": "i-1"}')  # fmt: skip
    acquire_line = ('{"command": "units.acquire", "country": "SE", "units": 3, '
                    '"on": "2021-07-01", "command_id": "u-1"}')  # fmt: skip
    commands = tmp_path / "commands.jsonl"
    commands.write_text("\n".join([init, acquire_line, acquire_line, init]) + "\n")
    answers = []
    for _ in range(2):
        result = invoke(["--format", "json", "import", str(commands)], env)
        assert result.exit_code == 0, result.output
        answers.append(json.loads(result.stdout))
    assert [e["type"] for e in answers[0]] == ["PartnershipEstablished", "UnitsAcquired"]
    assert answers[1] == answers[0]


# 6. Reads refuse projections that are ahead of the store.


def test_reads_refuse_projections_ahead_of_a_store_that_lost_facts(
    ledger: LedgerApplication, sqlite_url: str
) -> None:
    env = cli_env(sqlite_url, "nats://127.0.0.1:1")
    assert invoke(["balances"], env).exit_code == 0  # the projections catch up
    head = ledger.store.max_position()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as raw:
        raw.execute("DELETE FROM stored_events WHERE rowid > ?", (head - 2,))
    for args in (["balances"], ["trial-balance"], ["portfolio"], ["audit", "nl-siblings"]):
        result = invoke(args, env)
        assert result.exit_code == 1, (args, result.output)
        assert last_line(result.stderr) == (
            f"homeledger: projections are at position {head} but the store ends at "
            f"{head - 2}: facts were removed; run verify"
        )
        assert result.stdout == ""


# 8. Read commands never create tables in a file that holds no ledger.


def test_read_commands_leave_another_applications_sqlite_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other-app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    before = path.read_bytes()
    env = cli_env(f"sqlite:///{path}", "nats://127.0.0.1:1")
    for args in (["events", "stats"], ["events", "list"], ["balances"], ["verify"]):
        result = invoke(args, env)
        assert result.exit_code == 4, (args, result.output)
        assert (
            last_line(result.stderr)
            == f"homeledger: store unavailable: no homeledger store at sqlite:///{path}"
        )
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("notes",)]
