"""The stored read models on SQLite and PostgreSQL: figures, rebuilds, replays, the CLI.

The pro-rata case (tests.helpers.pro_rata_commands) is "A Home for a Home" on a
pro-rata basis from 1 July 2021, with homes acquired mid-year and a disposal, so the
2021 pledge counts unit-days. Every expected figure is computed by hand, there and in
the comments below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from homeledger.projections.as_of import PointInTime
from homeledger.projections.audit_trail import AUDIT_COLUMNS
from homeledger.projections.db import ProjectionDB
from homeledger.projections.read_models import MODEL_CLASSES, PROJECTIONS, ReadModels
from homeledger.projections.runner import ProjectionRunner
from tests import strategies as s
from tests.forger import raw_events
from tests.helpers import (
    dump_projections,
    fresh_store_url,
    one_line,
    open_app,
    run_history,
    url_of,
)


@pytest.fixture
def services(
    pro_rata_ledger: LedgerApplication,
) -> Iterator[tuple[ProjectionRunner, PointInTime]]:
    db = ProjectionDB(pro_rata_ledger.store.location)
    runner = ProjectionRunner(pro_rata_ledger.store, db, page=7, snapshot_every=5)
    runner.catch_up()
    yield runner, PointInTime(pro_rata_ledger.store, db)
    db.close()


def invoke(url: str, *args: str, fmt: str = "json") -> Any:
    result = CliRunner().invoke(cli, ["--store", url, "--format", fmt, *args])
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout) if fmt == "json" else result.stdout


# The pro-rata case, by hand.


def test_balances_per_year_match_the_hand_computed_figures(
    services: tuple[ProjectionRunner, PointInTime],
) -> None:
    _, reader = services
    rows = reader.balances(reader.resolve()).rows("year")
    assert rows == [
        {"year": 2021, "pledged": "80602.74", "received": "80602.74", "outstanding": "0.00",
         "allocated": "80000.00", "released": "5000.00", "unallocated": "5602.74"},
        {"year": 2022, "pledged": "178300.00", "received": "100000.00",
         "outstanding": "78300.00", "allocated": "130000.00", "released": "0.00",
         "unallocated": "48300.00"},
    ]  # fmt: skip
    model = reader.balances(reader.resolve())
    assert (model.years[2021].unit_basis, model.years[2022].unit_basis) == (294_200, 650_795)


def test_balances_per_initiative_and_country(
    services: tuple[ProjectionRunner, PointInTime],
) -> None:
    _, reader = services
    model = reader.balances(reader.resolve())
    assert model.rows("initiative") == [
        {"initiative": "gw-bissau-village", "country": "GW", "allocated": "150000.00",
         "released": "0.00", "disbursed": "60000.00", "available": "90000.00"},
        {"initiative": "nl-siblings-together", "country": "NL", "allocated": "50000.00",
         "released": "0.00", "disbursed": "15000.00", "available": "35000.00"},
        {"initiative": "se-youth-jobs", "country": "SE", "allocated": "10000.00",
         "released": "5000.00", "disbursed": "5000.00", "available": "0.00"},
    ]  # fmt: skip
    assert [(r["country"], r["available"]) for r in model.rows("country")] == [
        ("GW", "90000.00"), ("NL", "35000.00"), ("SE", "0.00"),
    ]  # fmt: skip
    assert model.rows("initiative", 2021)[2] == {
        "initiative": "se-youth-jobs", "country": "SE", "allocated": "10000.00",
        "released": "5000.00",
    }  # fmt: skip


def test_trial_balance_by_the_chart_of_accounts(
    services: tuple[ProjectionRunner, PointInTime],
) -> None:
    # cash = 180,602.74 received - 80,000.00 disbursed; receivable 2022 = 78,300.00.
    _, reader = services
    trial = reader.trial_balance(reader.resolve())
    balances = {row["account"]: row["balance"] for row in trial.rows()}
    assert balances == {
        "cash": "100602.74", "receivable:2021": "0.00", "receivable:2022": "78300.00",
        "unallocated:2021": "-5602.74", "unallocated:2022": "-48300.00",
        "allocated:gw-bissau-village": "-150000.00",
        "allocated:nl-siblings-together": "-50000.00", "allocated:se-youth-jobs": "-5000.00",
        "disbursed": "80000.00",
    }  # fmt: skip
    assert next(iter(balances)) == "cash" and list(balances)[-1] == "disbursed"
    debit_balances = sum(a.balance for a in trial.accounts.values() if a.balance > 0)
    credit_balances = -sum(a.balance for a in trial.accounts.values() if a.balance < 0)
    assert str(debit_balances) == str(credit_balances) == "258902.74"
    assert trial.debit == trial.credit and trial.difference == 0


def test_portfolio_by_effective_date(services: tuple[ProjectionRunner, PointInTime]) -> None:
    _, reader = services
    head = reader.resolve()

    def held(on: date) -> dict[str, int]:
        return {row["country"]: row["units"] for row in reader.portfolio(head, on)}

    assert held(date(2021, 6, 30)) == {}
    assert held(date(2021, 11, 14)) == {"DE": 300, "NL": 500, "SE": 1000}
    assert held(date(2021, 11, 15)) == {"DE": 300, "NL": 500, "SE": 800}
    assert held(date(2022, 7, 2)) == {"DE": 300, "DK": 365, "NL": 500, "SE": 800}


def test_audit_trail_has_every_fact_with_running_balance(
    services: tuple[ProjectionRunner, PointInTime],
) -> None:
    _, reader = services
    rows = reader.audit_rows("se-youth-jobs", reader.resolve())
    assert [(r["type"], r["change"], r["balance"]) for r in rows] == [
        ("InitiativeRegistered", None, "0.00"),
        ("FundsAllocated", "10000.00", "10000.00"),
        ("AllocationReleased", "-5000.00", "5000.00"),
        ("FundsDisbursed", "-5000.00", "0.00"),
        ("InitiativeClosed", None, "0.00"),
    ]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[2]["allocation_id"] == "a-se-2021" and rows[2]["detail"] == "scope reduced"
    assert rows[3]["effective_date"] == "2022-03-01"
    assert all(r["actor"] == "tester" and r["command_id"] and r["hash"] for r in rows)
    assert list(rows[0]) == list(AUDIT_COLUMNS)


def test_in_memory_state_equals_the_stored_projections(
    pro_rata_ledger: LedgerApplication, services: tuple[ProjectionRunner, PointInTime],
) -> None:
    _, reader = services
    state = ReadModels()
    for envelope in pro_rata_ledger.store.envelopes():
        state.apply(envelope)
    head = reader.resolve()
    for by in ("year", "initiative", "country"):
        assert state.balance_rows(by) == reader.balances(head).rows(by)
    assert state.audit_rows("gw-bissau-village") == reader.audit_rows("gw-bissau-village", head)
    assert state.portfolio(date(2022, 12, 31)) == reader.portfolio(head, date(2022, 12, 31))
    assert state.trial_balance().rows() == reader.trial_balance(head).rows()


# Rebuilds.


def test_rebuild_equals_the_incremental_projections(
    pro_rata_ledger: LedgerApplication, services: tuple[ProjectionRunner, PointInTime],
) -> None:
    runner, _ = services
    before = dump_projections(runner.db)
    assert before["hl_proj_snapshots"], "checkpoints every 5 positions"
    runner.rebuild()
    assert dump_projections(runner.db) == before
    runner.rebuild(["audit"])
    assert dump_projections(runner.db) == before


def test_one_projection_replays_while_the_others_stay(
    pro_rata_ledger: LedgerApplication, services: tuple[ProjectionRunner, PointInTime],
) -> None:
    runner, reader = services
    before = dump_projections(runner.db)
    with runner.db.write() as tx:
        tx.clear(MODEL_CLASSES["portfolio"])
    assert reader.projected_to() == 0
    assert runner.catch_up() == pro_rata_ledger.store.max_position()
    assert dump_projections(runner.db) == before


def test_two_runners_never_apply_a_fact_twice(pro_rata_ledger: LedgerApplication) -> None:
    """A runner whose page lost the race to another drops its state and reloads."""
    stores = [open_store(Settings(store=url_of(pro_rata_ledger.store))) for _ in range(3)]
    dbs = [ProjectionDB(store.location) for store in stores]
    other = ProjectionRunner(stores[1], dbs[1], page=4)
    raced: list[int] = []

    class Racing(ProjectionRunner):
        def _write(self, models: Any, before: Any, page: Any) -> None:
            if not raced:
                raced.append(other.catch_up())
            super()._write(models, before, page)

    try:
        first = Racing(stores[0], dbs[0], page=4)
        first.catch_up(stop=9)
        assert raced == [pro_rata_ledger.store.max_position()]
        assert first.catch_up() == 0
        incremental = dump_projections(dbs[0])
        ProjectionRunner(stores[2], dbs[2], page=4).rebuild()
        assert dump_projections(dbs[2]) == incremental
    finally:
        for store, db in zip(stores, dbs, strict=True):
            db.close()
            store.close()


# Random histories: incremental projections equal a rebuild; double entry holds.

# The fixtures only name a kind of store: each example records on a store of its own.
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])  # fmt: skip
@given(history=s.money_histories(), page=st.integers(1, 6),
       every=st.integers(1, 8), seal_every=st.integers(0, 12))  # fmt: skip
def test_incremental_projections_equal_a_rebuild(
    store_url: str, tmp_path: Path, history: list[c.Command], page: int, every: int,
    seal_every: int,
) -> None:  # fmt: skip
    app = open_app(fresh_store_url(store_url, tmp_path))
    db = ProjectionDB(app.store.location)
    runner = ProjectionRunner(app.store, db, page=page, snapshot_every=every)
    try:
        run_history(app, history, seal_every, runner)
        runner.catch_up()
        incremental = dump_projections(db)
        runner.rebuild()
        assert dump_projections(db) == incremental
        state = ReadModels()
        for envelope in app.store.envelopes():
            state.apply(envelope)
            assert state.trial_balance().difference == 0, envelope.position
        reader = PointInTime(app.store, db)
        head = reader.resolve()
        assert head == app.store.max_position()
        for by in ("year", "initiative", "country"):
            assert reader.balances(head).rows(by) == state.balance_rows(by)
        assert reader.trial_balance(head).rows() == state.trial_balance().rows()
    finally:
        db.close()
        app.store.close()


# The CLI.


def test_cli_balances_json_rows(pro_rata_ledger: LedgerApplication) -> None:
    url = url_of(pro_rata_ledger.store)
    rows = invoke(url, "balances")
    assert rows[0] == {"year": 2021, "pledged": "80602.74", "received": "80602.74",
                       "outstanding": "0.00", "allocated": "80000.00", "released": "5000.00",
                       "unallocated": "5602.74"}  # fmt: skip
    assert invoke(url, "balances", "--year", "2022")[0]["year"] == 2022
    by_country = invoke(url, "balances", "--by", "country")
    assert [row["country"] for row in by_country] == ["GW", "NL", "SE"]
    assert set(by_country[0]) == {"country", "allocated", "released", "disbursed", "available"}
    initiatives = invoke(url, "balances", "--by", "initiative", "--year", "2021")
    assert initiatives[0] == {"initiative": "gw-bissau-village", "country": "GW",
                              "allocated": "50000.00", "released": "0.00"}  # fmt: skip


def test_cli_audit_csv_is_the_auditors_file(pro_rata_ledger: LedgerApplication) -> None:
    url = url_of(pro_rata_ledger.store)
    text = invoke(url, "audit", "gw-bissau-village", fmt="csv")
    lines = text.splitlines()
    assert lines[0] == ",".join(AUDIT_COLUMNS)
    assert len(lines) == 1 + 5  # registered, 2 allocations, milestone, disbursement
    rows = invoke(url, "audit", "gw-bissau-village")
    assert [r["balance"] for r in rows] == ["0.00", "50000.00", "50000.00", "150000.00",
                                            "90000.00"]  # fmt: skip
    result = CliRunner().invoke(cli, ["--store", url, "audit", "no-such-thing"])
    assert result.exit_code == 2 and "no-such-thing" in result.stderr


def test_cli_portfolio_trial_balance_and_report(
    pro_rata_ledger: LedgerApplication, tmp_path: Path
) -> None:
    url = url_of(pro_rata_ledger.store)
    rows = invoke(url, "portfolio", "--on", "2021-12-31")
    assert rows == [{"on": "2021-12-31", "country": "DE", "units": 300},
                    {"on": "2021-12-31", "country": "NL", "units": 500},
                    {"on": "2021-12-31", "country": "SE", "units": 800}]  # fmt: skip
    trial = invoke(url, "trial-balance")
    assert trial["difference"] == "0.00" and trial["balanced"] is True
    out = tmp_path / "report-2021.json"
    invoke(url, "report", "--year", "2021", "--out", str(out), fmt="table")
    out.unlink()
    CliRunner().invoke(cli, ["--store", url, "--format", "json", "report", "--year", "2021",
                             "--out", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    assert report["pledge"]["pledged"] == "80602.74" and report["unit_basis"] == 294_200
    assert [a["net"] for a in report["allocations"]] == ["50000.00", "20000.00", "5000.00"]
    assert report["disbursed"] == "0.00"  # the 2021 money was paid out in 2022
    assert report["milestones"][0]["milestone"] == "solar panels installed [evidence: photo-17]"
    report_2022 = invoke(url, "report", "--year", "2022")
    assert report_2022["disbursed"] == "80000.00"
    csv_text = invoke(url, "report", "--year", "2022", fmt="csv")
    assert csv_text.splitlines()[0] == "section,item,country,detail,amount"


def test_reads_refuse_projections_ahead_of_a_store_that_lost_facts(
    ledger: LedgerApplication, sqlite_url: str
) -> None:
    assert CliRunner().invoke(cli, ["--store", sqlite_url, "balances"]).exit_code == 0
    head = ledger.store.max_position()  # the projections caught up to here
    with raw_events(sqlite_url) as raw:
        raw.truncate(head - 1)
    for args in (["balances"], ["trial-balance"], ["portfolio"], ["audit", "nl-siblings"]):
        result = CliRunner().invoke(cli, ["--store", sqlite_url, *args])
        assert result.exit_code == 1, (args, result.output)
        assert one_line(result.stderr) == (
            f"homeledger: projections are at position {head} but the store ends at "
            f"{head - 2}: facts were removed; run verify"
        )
        assert result.stdout == ""


def test_cli_replay_rebuilds_and_reports(pro_rata_ledger: LedgerApplication) -> None:
    url = url_of(pro_rata_ledger.store)
    summary = invoke(url, "replay")
    assert summary["events"] == pro_rata_ledger.store.max_position()
    assert summary["projections"] == list(PROJECTIONS)
    one = invoke(url, "replay", "--projection", "postings")
    assert one["projections"] == ["postings"]
    result = CliRunner().invoke(cli, ["--store", url, "replay", "--projection", "nope"])
    assert result.exit_code == 2
