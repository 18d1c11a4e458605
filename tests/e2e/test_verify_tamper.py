"""`homeledger verify` against a store tampered with directly in the database.

The ledger is the pro-rata case with a seal in the middle: 13 facts, the seal at
position 13 (covering 1..12), then 12 more. Projections are built before anyone
tampers, as in real life. Each kind of tampering must make `verify` exit 1 and name
the first bad position; a clean store verifies with exit 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.hash_chain import chain_hash
from homeledger.cli.main import cli
from tests.forger import RawEvents, raw_events
from tests.helpers import MakeApp, pro_rata_commands, record

SEAL_AT = 13
LAST = 25
FIRST_ALLOCATION = 10  # FundsAllocated of gw-bissau-village, 50000.00 of 2021


def verify(url: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["--store", url, "--format", "json", "verify"])
    return result, json.loads(result.stdout)


@pytest.fixture
def raw(store_url: str, make_app: MakeApp) -> Iterator[RawEvents]:
    """The pro-rata case sealed after 12 facts, its projections built: the events table."""
    app = make_app(store_url)
    commands = pro_rata_commands()
    record(app, commands[:12])
    app.seal()
    record(app, commands[12:])
    assert app.store.max_position() == LAST
    built = CliRunner().invoke(cli, ["--store", store_url, "balances"])  # projections exist
    assert built.exit_code == 0, built.stderr
    with raw_events(store_url) as events:
        yield events


def test_a_clean_store_verifies(store_url: str, raw: RawEvents) -> None:
    result, report = verify(store_url)
    assert result.exit_code == 0, result.output
    assert report["ok"] is True and report["first_bad_position"] is None
    assert [c["check"] for c in report["checks"]] == [
        "hash-chain", "seals", "rules", "receipts", "ledger-snapshots", "projections",
        "double-entry"]  # fmt: skip
    table = CliRunner().invoke(cli, ["--store", store_url, "verify"])
    assert table.exit_code == 0 and "covers positions 1..12" in table.output


def edit_payload(raw: RawEvents) -> int:
    body = raw.body(FIRST_ALLOCATION)
    body["data"]["amount"] = "60000.00"
    raw.set_body(FIRST_ALLOCATION, body)
    return FIRST_ALLOCATION


def delete_one(raw: RawEvents) -> int:
    raw.delete(FIRST_ALLOCATION)
    return FIRST_ALLOCATION + 1  # the next fact no longer follows the one before it


def swap_contents(raw: RawEvents) -> int:
    raw.swap_contents(16, 19)
    return 16


def swap_positions(raw: RawEvents) -> int:
    raw.swap_positions(6, 21)
    return 6


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
    raw.insert(k + 1, originator, LAST + 1, topic, body)
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
    store_url: str, raw: RawEvents, tamper: Callable[[RawEvents], int]
) -> None:
    first_bad = tamper(raw)
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


def test_a_consistent_rewrite_is_caught_by_the_seal(store_url: str, raw: RawEvents) -> None:
    """Re-hashing the whole chain after an edit hides it from the chain, not from the seal."""
    body = raw.body(FIRST_ALLOCATION)
    body["data"]["amount"] = "60000.00"
    raw.rechain_from(FIRST_ALLOCATION, body)
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"] is True
    assert checks["seals"]["ok"] is False and checks["seals"]["first_bad_position"] == SEAL_AT
    assert checks["projections"]["first_bad_position"] == FIRST_ALLOCATION
    assert report["first_bad_position"] == FIRST_ALLOCATION


def test_tampered_projections_are_found(store_url: str, raw: RawEvents) -> None:
    raw.run("UPDATE hl_proj_audit SET balance = balance + 1 WHERE position = ?",
               (FIRST_ALLOCATION,))  # fmt: skip
    raw.run("UPDATE hl_proj_balance_years SET received = received + 100 WHERE year = 2021")
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"] and not checks["projections"]["ok"]
    assert checks["projections"]["findings"] == 2
    assert report["first_bad_position"] == FIRST_ALLOCATION
    assert CliRunner().invoke(cli, ["--store", store_url, "replay"]).exit_code == 0
    assert verify(store_url)[0].exit_code == 0


def test_an_unbalanced_posting_is_found(store_url: str, raw: RawEvents) -> None:
    raw.run("UPDATE hl_proj_postings SET debit = debit + 1 WHERE position = ? AND line = 1",
               (FIRST_ALLOCATION,))  # fmt: skip
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["double-entry"]["first_bad_position"] == FIRST_ALLOCATION


def test_a_pledge_that_does_not_follow_from_the_portfolio_is_found(
    store_url: str, raw: RawEvents
) -> None:
    """A pledge edited and re-hashed consistently (no seal covers it) is still recomputed."""
    pledge = 18  # the 2022 pledge: 178300.00
    body = raw.body(pledge)
    assert body["type"] == "DonationPledged"
    body["data"]["amount"] = body["data"]["delta"] = "178400.00"
    raw.rechain_from(pledge, body)
    result, report = verify(store_url)
    assert result.exit_code == 1
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["hash-chain"]["ok"] and checks["seals"]["ok"]
    assert checks["rules"]["first_bad_position"] == pledge  # admit recomputes the pledge
    assert "[pledge-computed]" in checks["rules"]["detail"]
    assert "178300.00" in checks["rules"]["detail"]


def test_two_swapped_rows_name_the_aggregate_version_that_differs(
    ledger: LedgerApplication, sqlite_url: str
) -> None:
    with raw_events(sqlite_url) as raw:
        raw.swap_contents(7, 8)
    result = CliRunner().invoke(cli, ["--store", sqlite_url, "verify"])
    assert result.exit_code == 1, result.output
    assert "aggregate_version is 8 where 7 was expected (stored version 7)" in result.stdout
    assert "version 8 where 8" not in result.stdout
