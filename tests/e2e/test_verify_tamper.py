"""`homeledger verify` against a store tampered with directly in the database.

The ledger is the reference case with a seal in the middle: 13 facts, the seal at
position 13 (covering 1..12), then 12 more. Projections are built before anyone
tampers, as in real life. Each kind of tampering must make `verify` exit 1 and name
the first bad position; a clean store verifies with exit 0.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.hash_chain import canonical_json, chain_hash
from homeledger.cli.main import cli
from tests.integration.test_projections import record, reference_commands

MakeApp = Callable[..., LedgerApplication]
SEAL_AT = 13
LAST = 25
FIRST_ALLOCATION = 10  # FundsAllocated of gw-bissau-village, 50000.00 of 2021


class RawEvents:
    """The events table, edited behind the ledger's back (`ID` is the position column)."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.id, self.table = "rowid", "stored_events"
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.id, self.table = "notification_id", "homeledger_events"

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        sql = sql.replace("ID", self.id).replace("stored_events", self.table)
        cursor = self.conn.execute(sql if self.sqlite else sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []

    def row(self, position: int) -> tuple[Any, ...]:
        return tuple(self.run("SELECT originator_id, originator_version, topic, state "
                              "FROM stored_events WHERE ID = ?", (position,))[0])  # fmt: skip

    def body(self, position: int) -> dict[str, Any]:
        return dict(json.loads(bytes(self.row(position)[3])))

    def set_body(self, position: int, body: dict[str, Any]) -> None:
        self.run("UPDATE stored_events SET state = ? WHERE ID = ?",
                 (canonical_json(body), position))  # fmt: skip

    def move(self, old: int, new: int) -> None:
        self.run("UPDATE stored_events SET ID = ? WHERE ID = ?", (new, old))

    def close(self) -> None:
        self.conn.close()


def verify(url: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--store", url, "--format", "json", "verify"])
    return result, json.loads(result.stdout)


@pytest.fixture
def ledger(store_url: str, make_app: MakeApp) -> Iterator[RawEvents]:
    app = make_app(store_url)
    commands = reference_commands()
    record(app, commands[:12])
    app.seal()
    record(app, commands[12:])
    assert app.store.max_position() == LAST
    built = CliRunner().invoke(cli, ["--store", store_url, "balances"])  # projections exist
    assert built.exit_code == 0, built.stderr
    raw = RawEvents(store_url)
    yield raw
    raw.close()


def test_a_clean_store_verifies(store_url: str, ledger: RawEvents) -> None:
    result, report = verify(store_url)
    assert result.exit_code == 0, result.output
    assert report["ok"] is True and report["first_bad_position"] is None
    assert [c["check"] for c in report["checks"]] == [
        "hash-chain", "seals", "projections", "double-entry", "pledges"]  # fmt: skip
    table = CliRunner().invoke(cli, ["--store", store_url, "verify"])
    assert table.exit_code == 0 and "covers positions 1..12" in table.output


def edit_payload(raw: RawEvents) -> int:
    body = raw.body(FIRST_ALLOCATION)
    body["data"]["amount"] = "60000.00"
    raw.set_body(FIRST_ALLOCATION, body)
    return FIRST_ALLOCATION


def delete_one(raw: RawEvents) -> int:
    raw.run("DELETE FROM stored_events WHERE ID = ?", (FIRST_ALLOCATION,))
    return FIRST_ALLOCATION + 1  # the next fact no longer follows the one before it


def swap_contents(raw: RawEvents) -> int:
    i, j = 16, 19
    (_, _, topic_i, state_i), (_, _, topic_j, state_j) = raw.row(i), raw.row(j)
    raw.run("UPDATE stored_events SET topic = ?, state = ? WHERE ID = ?", (topic_j, state_j, i))
    raw.run("UPDATE stored_events SET topic = ?, state = ? WHERE ID = ?", (topic_i, state_i, j))
    return i


def swap_positions(raw: RawEvents) -> int:
    i, j = 6, 21
    raw.move(i, 10_000)
    raw.move(j, i)
    raw.move(10_000, j)
    return i


def insert_forged(raw: RawEvents) -> int:
    """A careful forger: a well-formed, correctly hashed fact slipped in after position 10."""
    k = FIRST_ALLOCATION
    originator, _, topic, _ = raw.row(k)
    body = raw.body(k)
    body["event_id"] = "00000000-0000-4000-8000-000000000001"
    body["data"]["amount"] = "1000.00"
    body["aggregate_version"] = LAST + 1  # the only version free
    body["prev_hash"] = raw.body(k)["hash"]
    body["hash"] = chain_hash(body)
    for position in range(LAST, k, -1):  # make room at k + 1
        raw.move(position, position + 1)
    raw.run("INSERT INTO stored_events (ID, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            (k + 1, originator, LAST + 1, topic, canonical_json(body)))  # fmt: skip
    return k + 1


def insert_foreign(raw: RawEvents) -> int:
    """A fact of another aggregate appended at the end."""
    _originator, _, topic, state = raw.row(LAST)
    other = "1" * 32 if raw.sqlite else "11111111-1111-1111-1111-111111111111"
    raw.run("INSERT INTO stored_events (ID, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)", (LAST + 1, other, 1, topic, state))  # fmt: skip
    return LAST + 1


def unreadable(raw: RawEvents) -> int:
    raw.set_body(7, {"not": "an event"})
    return 7


TAMPERING = {
    "edit-payload": edit_payload,
    "delete-one": delete_one,
    "swap-contents": swap_contents,
    "swap-positions": swap_positions,
    "insert-forged": insert_forged,
    "insert-foreign": insert_foreign,
    "unreadable": unreadable,
}


@pytest.mark.parametrize("tamper", list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampering_is_found_at_the_first_bad_position(
    store_url: str, ledger: RawEvents, tamper: Callable[[RawEvents], int]
) -> None:
    first_bad = tamper(ledger)
    result, report = verify(store_url)
    assert result.exit_code == 1, result.output
    assert report["ok"] is False
    assert report["first_bad_position"] == first_bad
    chain = report["checks"][0]
    assert chain["check"] == "hash-chain" and chain["ok"] is False
    assert chain["first_bad_position"] == first_bad
    assert f"first bad position {first_bad}" in result.stderr
    table = CliRunner().invoke(cli, ["--store", store_url, "verify"])
    assert table.exit_code == 1 and f"position {first_bad}:" in table.output


def rechain_from(ledger: RawEvents, start: int, edited: dict[str, Any]) -> None:
    """Store `edited` at `start` and re-hash every event after it, as a careful forger would."""
    prev = ledger.body(start - 1)["hash"]
    for position in range(start, LAST + 1):
        body = edited if position == start else ledger.body(position)
        body["prev_hash"] = prev
        body["hash"] = prev = chain_hash(body)
        ledger.set_body(position, body)


def test_a_consistent_rewrite_is_caught_by_the_seal(store_url: str, ledger: RawEvents) -> None:
    """Re-hashing the whole chain after an edit hides it from the chain, not from the seal."""
    body = ledger.body(FIRST_ALLOCATION)
    body["data"]["amount"] = "60000.00"
    rechain_from(ledger, FIRST_ALLOCATION, body)
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"] is True
    assert checks["seals"]["ok"] is False and checks["seals"]["first_bad_position"] == SEAL_AT
    assert checks["projections"]["first_bad_position"] == FIRST_ALLOCATION
    assert report["first_bad_position"] == FIRST_ALLOCATION


def test_tampered_projections_are_found(store_url: str, ledger: RawEvents) -> None:
    ledger.run("UPDATE hl_proj_audit SET balance = balance + 1 WHERE position = ?",
               (FIRST_ALLOCATION,))  # fmt: skip
    ledger.run("UPDATE hl_proj_balance_years SET received = received + 100 WHERE year = 2021")
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"] and not checks["projections"]["ok"]
    assert checks["projections"]["findings"] == 2
    assert report["first_bad_position"] == FIRST_ALLOCATION
    assert CliRunner().invoke(cli, ["--store", store_url, "replay"]).exit_code == 0
    assert verify(store_url)[0].exit_code == 0


def test_an_unbalanced_posting_is_found(store_url: str, ledger: RawEvents) -> None:
    ledger.run("UPDATE hl_proj_postings SET debit = debit + 1 WHERE position = ? AND line = 1",
               (FIRST_ALLOCATION,))  # fmt: skip
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["double-entry"]["first_bad_position"] == FIRST_ALLOCATION


def test_a_pledge_that_does_not_follow_from_the_portfolio_is_found(
    store_url: str, ledger: RawEvents
) -> None:
    """A pledge edited and re-hashed consistently (no seal covers it) is still recomputed."""
    pledge = 18  # the 2022 pledge: 178300.00
    body = ledger.body(pledge)
    assert body["type"] == "DonationPledged"
    body["data"]["amount"] = body["data"]["delta"] = "178400.00"
    rechain_from(ledger, pledge, body)
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"] and checks["seals"]["ok"]
    assert checks["pledges"]["first_bad_position"] == pledge
    assert "178300.00" in checks["pledges"]["detail"]
