"""`verify` with a second process (cli/beside.py): the ledger's checks (chain, seals,
rules, ledger snapshots) run there while this process checks the receipts and the read
models. Whatever a forger did, the report is the one a single process gives, finding for
finding; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.errors import StoreUnavailableError
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import Settings
from homeledger.cli.beside import BESIDE_FROM, ProcessLedgerChecks
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.verify import VerifyReport, verify
from homeledger.projections.witness import verify_against_stream
from tests.forger import next_fact, publish_raw, raw_events
from tests.helpers import fresh_store_url, open_app, url_of
from tests.nats_helpers import cli_env, invoke, record_story


def findings(report: VerifyReport) -> list[Any]:
    return [(c.name, sorted(c.findings, key=repr), c.summary) for c in report.checks]


def both_ways(app: LedgerApplication) -> tuple[VerifyReport, VerifyReport]:
    """verify in one process, then with the ledger's checks in a second."""
    db = ProjectionDB(app.store.location)
    try:
        runner = ProjectionRunner(app.store, db)
        alone = verify(app.store, db, runner)
        split = verify(app.store, db, runner,
                       beside=ProcessLedgerChecks(Settings(store=url_of(app.store))))  # fmt: skip
    finally:
        db.close()
    return alone, split


def tampered(app: LedgerApplication, url: str,
             tampering: list[tuple[str, float]]) -> tuple[VerifyReport, VerifyReport]:  # fmt: skip
    """`app`'s store (closed here), its projections caught up and then tampered with,
    verified both ways."""
    db = ProjectionDB(app.store.location)
    ProjectionRunner(app.store, db).catch_up()
    db.close()
    app.store.close()
    for how, where in tampering:
        tamper(url, how, where)
    app = open_app(url)
    try:
        return both_ways(app)
    finally:
        app.store.close()


def tamper(url: str, how: str, where: float) -> None:
    """One thing a forger with the database might do, at about `where` (0..1)."""
    with raw_events(url) as raw:
        positions = raw.positions()
        position = positions[int(where * (len(positions) - 1))]
        body = raw.body(position)
        if how == "edit":  # its own hash recomputed, the chain after it left
            raw.edit(position, {"actor": "forger"}, data=False)
        elif how == "rechain":  # an amount changed and every hash after it recomputed
            amount = body["data"].get("amount")
            raw.rechain_from(position, {**body, "data": {**body["data"], "amount": "0.01"}}
                             if amount else {**body, "actor": "forger"})  # fmt: skip
        elif how == "receipt":
            raw.delete_receipt(body["command_id"])
        elif how == "truncate":
            raw.truncate(max(2, position))
        elif how == "swap":
            raw.swap_contents(position, positions[-1])
        elif how == "projection":
            raw.run("UPDATE hl_proj_timeline SET known_by = '1999-01-01' WHERE position = ?",
                    (position,))  # fmt: skip
        elif how == "allocation":
            rows = raw.run("SELECT allocation_id FROM homeledger_allocations LIMIT 1")
            if rows:
                raw.delete_allocation(rows[0][0])


TAMPERING = st.lists(st.tuples(st.sampled_from(["edit", "rechain", "receipt", "truncate", "swap",
                                                "projection", "allocation"]),
                               st.floats(0, 1)), max_size=2)  # fmt: skip


# SQLite: a store of its own for each example (the forger's SQL is the same on both).
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(tampering=TAMPERING)
def test_a_split_verify_reports_what_one_process_reports(
    sqlite_url: str, tmp_path: Path, tampering: list[tuple[str, float]]
) -> None:
    url = fresh_store_url(sqlite_url, tmp_path)
    app = open_app(url)
    record_story(app)
    alone, split = tampered(app, url, tampering)
    assert findings(split) == findings(alone)
    assert split.to_dict() == alone.to_dict()
    assert split.ok == (not tampering or alone.ok)


def test_a_failure_of_the_second_process_is_raised(any_ledger: LedgerApplication,
                                                   tmp_path: Path) -> None:  # fmt: skip
    db = ProjectionDB(any_ledger.store.location)
    try:
        elsewhere = ProcessLedgerChecks(Settings(store=f"sqlite:///{tmp_path / 'none.db'}"))
        with pytest.raises(StoreUnavailableError):
            verify(any_ledger.store, db, ProjectionRunner(any_ledger.store, db), beside=elsewhere)
    finally:
        db.close()


@pytest.mark.parametrize("tampering", [[], [("rechain", 0.5), ("receipt", 0.2)],
                                       [("projection", 0.7), ("truncate", 0.9)]])  # fmt: skip
def test_the_split_on_postgresql_reports_what_one_process_reports(
    any_ledger: LedgerApplication, store_url: str, tampering: list[tuple[str, float]]
) -> None:
    alone, split = tampered(any_ledger, store_url, tampering)
    assert findings(split) == findings(alone)
    assert alone.ok == (not tampering)


# Through the CLI: from BESIDE_FROM facts on, `verify --against-nats` runs the ledger's
# checks and the stream's reading in two more processes.


@pytest.mark.nats
def test_verify_against_nats_in_three_processes_reports_what_one_process_reports(
    server: NatsServer, tmp_path: Path
) -> None:
    from bench.shapes import allocation_heavy, write_jsonl

    url = f"sqlite:///{tmp_path / 'big.db'}"
    env = cli_env(url, server.url, HOMELEDGER_ACTOR="ops")
    lines = write_jsonl(tmp_path / "commands.jsonl", allocation_heavy(BESIDE_FROM + 200))
    assert invoke(["import", str(lines)], env).exit_code == 0
    assert invoke(["relay", "--once"], env).exit_code == 0
    app = open_app(url)
    last = app.store.envelopes(app.store.max_position()).__next__().to_dict()
    app.store.close()
    for forged in (False, True):
        if forged:  # a published fact the store does not have: found beyond its head
            event = next_fact(last, type="MilestoneReached", scope=last["scope"])
            publish_raw(server.url, f"homeledger.events.MilestoneReached.{last['scope']}",
                        event, {"Nats-Msg-Id": event["event_id"]})  # fmt: skip
        result = invoke(["--format", "json", "verify", "--against-nats"], env)
        assert result.exit_code == (1 if forged else 0), result.output
        split = json.loads(result.stdout)
        app = open_app(url)
        db = ProjectionDB(app.store.location)
        try:
            report = verify(app.store, db, ProjectionRunner(app.store, db))
            report.checks += asyncio.run(verify_against_stream(
                Settings(store=url, nats_url=server.url), app.store, db, report.head,
                report.replayed))  # fmt: skip
        finally:
            db.close()
            app.store.close()
        assert split == report.to_dict()
        assert [c["check"] for c in split["checks"] if not c["ok"]] == (
            ["stream-head"] if forged else [])
