"""The stored read models on SQLite and PostgreSQL: figures, rebuilds, replays, the CLI.

The reference case is "A Home for a Home" on a pro-rata basis from 1 July 2021, with
homes acquired mid-year and a disposal, so the 2021 pledge counts unit-days. Every
expected figure below is computed by hand in the comments.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.cli.bootstrap import build_application, open_store
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from homeledger.domain.errors import DomainError
from homeledger.projections.as_of import PointInTime
from homeledger.projections.audit_trail import AUDIT_COLUMNS
from homeledger.projections.db import ProjectionDB, all_tables
from homeledger.projections.read_models import MODEL_CLASSES, PROJECTIONS, ReadModels
from homeledger.projections.runner import ProjectionRunner
from tests.conftest import PG_HOST, PG_PORT, PG_USER, StepClock
from tests.strategies import COUNTRIES, MILESTONES, SLUGS

MakeApp = Callable[..., LedgerApplication]


def reference_commands() -> list[c.Command]:
    """The reference case. Hand-computed figures:

    2021, pro-rata from 2021-07-01 (184 days), 365 days in the year:
      SE 1000 homes 07-01..11-14 (137 days) = 137,000 unit-days; 800 homes 11-15..12-31
      (47 days) = 37,600; NL 500 x 184 = 92,000; DE 300 from 10-01 (92 days) = 27,600.
      Unit-days 294,200; pledge 100.00 x 294,200 / 365 = 80,602.739... -> 80602.74.
    2022: 1,600 homes all year = 584,000 unit-days, DK 365 from 07-02 (183 days) =
      66,795; 650,795 unit-days x 100.00 / 365 = 178300.00.
    """
    return [
        c.EstablishPartnership(donor="Heimstaden", beneficiary="SOS Children's Villages",
                               rate="100.00", currency="EUR", basis="pro-rata",
                               start=date(2021, 7, 1)),
        c.AcquireUnits(country="SE", units=1000, on=date(2021, 7, 1), ref="deed-se"),
        c.AcquireUnits(country="NL", units=500, on=date(2021, 7, 1)),
        c.AcquireUnits(country="DE", units=300, on=date(2021, 10, 1)),
        c.DisposeUnits(country="SE", units=200, on=date(2021, 11, 15)),
        c.RegisterInitiative(id="gw-bissau-village", name="Bissau sustainable hub",
                             country="GW", programme="family-like alternative care"),
        c.RegisterInitiative(id="nl-siblings-together", name="Siblings together",
                             country="NL", programme="family-like alternative care"),
        c.RegisterInitiative(id="se-youth-jobs", name="Youth employability", country="SE",
                             programme="youth employability"),
        c.PledgeDonation(year=2021),
        c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount="50000.00",
                        allocation_id="a-gw-2021"),
        c.AllocateFunds(initiative="nl-siblings-together", year=2021, amount="20000.00",
                        allocation_id="a-nl-2021"),
        c.AllocateFunds(initiative="se-youth-jobs", year=2021, amount="10000.00",
                        allocation_id="a-se-2021"),
        c.ReleaseAllocation(id="a-se-2021", amount="5000.00", reason="scope reduced"),
        c.RecordMilestone(initiative="gw-bissau-village", name="solar panels installed",
                          on=date(2021, 12, 1), evidence="photo-17"),
        c.ReceiveDonation(year=2021, amount="80602.74", on=date(2022, 1, 15)),
        c.AcquireUnits(country="DK", units=365, on=date(2022, 7, 2)),
        c.PledgeDonation(year=2022),
        c.ReceiveDonation(year=2022, amount="100000.00", on=date(2022, 6, 30)),
        c.AllocateFunds(initiative="gw-bissau-village", year=2022, amount="100000.00",
                        allocation_id="a-gw-2022"),
        c.AllocateFunds(initiative="nl-siblings-together", year=2022, amount="30000.00",
                        allocation_id="a-nl-2022"),
        c.DisburseFunds(initiative="gw-bissau-village", amount="60000.00", on=date(2022, 2, 1)),
        c.DisburseFunds(initiative="nl-siblings-together", amount="15000.00",
                        on=date(2022, 3, 1)),
        c.DisburseFunds(initiative="se-youth-jobs", amount="5000.00", on=date(2022, 3, 1)),
        c.CloseInitiative(id="se-youth-jobs", on=date(2022, 6, 30), reason="completed"),
    ]


def record(app: LedgerApplication, commands: list[c.Command]) -> None:
    for command in commands:
        app.execute(command)


@pytest.fixture
def reference(store_url: str, make_app: MakeApp) -> LedgerApplication:
    app = make_app(store_url)
    record(app, reference_commands())
    return app


@pytest.fixture
def services(reference: LedgerApplication) -> Iterator[tuple[ProjectionRunner, PointInTime]]:
    db = ProjectionDB(reference.store.location)
    runner = ProjectionRunner(reference.store, db, page=7, snapshot_every=5)
    runner.catch_up()
    yield runner, PointInTime(reference.store, db)
    db.close()


def invoke(url: str, *args: str, fmt: str = "json") -> Any:
    result = CliRunner().invoke(cli, ["--store", url, "--format", fmt, *args])
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout) if fmt == "json" else result.stdout


# The reference case, by hand.


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
    reference: LedgerApplication, services: tuple[ProjectionRunner, PointInTime],
) -> None:
    _, reader = services
    state = ReadModels()
    for envelope in reference.store.envelopes():
        state.apply(envelope)
    head = reader.resolve()
    for by in ("year", "initiative", "country"):
        assert state.balance_rows(by) == reader.balances(head).rows(by)
    assert state.audit_rows("gw-bissau-village") == reader.audit_rows("gw-bissau-village", head)
    assert state.portfolio(date(2022, 12, 31)) == reader.portfolio(head, date(2022, 12, 31))
    assert state.trial_balance().rows() == reader.trial_balance(head).rows()


# Rebuilds.


def dump(db: ProjectionDB) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's content, sorted: what 'equal projections' means."""
    with db.read() as tx:
        return {
            table.name: sorted(tx.query(f"SELECT * FROM {table.name}"), key=repr)
            for table in all_tables() if table.name != "hl_proj_meta"
        }  # fmt: skip


def test_rebuild_equals_the_incremental_projections(
    reference: LedgerApplication, services: tuple[ProjectionRunner, PointInTime],
) -> None:
    runner, _ = services
    before = dump(runner.db)
    assert before["hl_proj_snapshots"], "checkpoints every 5 positions"
    runner.rebuild()
    assert dump(runner.db) == before
    runner.rebuild(["audit"])
    assert dump(runner.db) == before


def test_one_projection_replays_while_the_others_stay(
    reference: LedgerApplication, services: tuple[ProjectionRunner, PointInTime],
) -> None:
    runner, reader = services
    before = dump(runner.db)
    with runner.db.write() as tx:
        tx.clear(MODEL_CLASSES["portfolio"])
    assert reader.projected_to() == 0
    assert runner.catch_up() == reference.store.max_position()
    assert dump(runner.db) == before


def test_two_runners_never_apply_a_fact_twice(reference: LedgerApplication) -> None:
    """A runner whose page lost the race to another drops its state and reloads."""
    stores = [open_store(Settings(store=_url_of(reference.store))) for _ in range(3)]
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
        assert raced == [reference.store.max_position()]
        assert first.catch_up() == 0
        incremental = dump(dbs[0])
        ProjectionRunner(stores[2], dbs[2], page=4).rebuild()
        assert dump(dbs[2]) == incremental
    finally:
        for store, db in zip(stores, dbs, strict=True):
            db.close()
            store.close()


def _url_of(store: LedgerStore) -> str:
    at = store.location
    if at.kind == "sqlite":
        return f"sqlite:///{at.path}"
    return f"postgresql://{at.user}@{at.host}:{at.port}/{at.dbname}?schema={at.schema}"


# Random histories: incremental projections equal a rebuild; double entry holds.

KINDS = ("allocate", "allocate", "allocate", "release", "release", "disburse", "disburse",
         "receive", "receive", "acquire", "dispose", "pledge", "milestone", "close")


def _money(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda cents: f"{cents // 100}.{cents % 100:02d}")


@st.composite
def money_histories(draw: st.DrawFn, max_size: int = 30) -> list[c.Command]:
    """Histories that move money: most allocations, releases, receipts, disbursements and
    pledge adjustments (up and down) are valid; the ones the ledger refuses are skipped."""
    start = draw(st.dates(date(2021, 1, 1), date(2021, 12, 31)))
    slugs = draw(st.lists(st.sampled_from(SLUGS), min_size=1, max_size=4, unique=True))
    history: list[c.Command] = [
        c.EstablishPartnership(
            donor="Heimstaden", beneficiary="SOS", currency="EUR", start=start,
            rate=draw(_money(100, 20_000)), basis=draw(st.sampled_from(["pro-rata", "year-end"])),
        ),
    ]  # fmt: skip
    for _ in range(draw(st.integers(1, 3))):
        units = draw(st.integers(20, 400))
        history.append(c.AcquireUnits(country=draw(st.sampled_from(COUNTRIES)), units=units,
                                      on=start))  # fmt: skip
    for slug in slugs:
        history.append(c.RegisterInitiative(id=slug, name=slug.upper(), programme="family",
                                            country=draw(st.sampled_from(COUNTRIES))))  # fmt: skip
    history += [c.PledgeDonation(year=year) for year in range(start.year, 2024)]
    allocated: list[str] = []
    for index in range(draw(st.integers(max_size // 2, max_size))):
        fields = _Fields(draw, start, slugs)
        kind = draw(st.sampled_from(KINDS))
        if kind == "allocate":
            allocated.append(f"a-{index}")
            history.append(fields.allocate(allocated[-1]))
        elif kind == "release" and allocated:
            history.append(fields.release(draw(st.sampled_from(allocated))))
        elif kind != "release":
            history.append(getattr(fields, kind)())
    return history


class _Fields:
    """One random command of each kind, within the history's dates and initiatives."""

    def __init__(self, draw: st.DrawFn, start: date, slugs: list[str]) -> None:
        self.draw, self.slugs = draw, slugs
        self.on = draw(st.dates(start, date(2023, 12, 31)))
        self.year = draw(st.integers(start.year, 2023))
        self.initiative = draw(st.sampled_from(slugs))

    def allocate(self, allocation_id: str) -> c.Command:
        return c.AllocateFunds(initiative=self.initiative, year=self.year,
                               amount=self.draw(_money(100, 200_000)),
                               allocation_id=allocation_id)  # fmt: skip

    def release(self, allocation_id: str) -> c.Command:
        return c.ReleaseAllocation(id=allocation_id, amount=self.draw(_money(100, 60_000)),
                                   reason="re-planned")  # fmt: skip

    def disburse(self) -> c.Command:
        return c.DisburseFunds(initiative=self.initiative, on=self.on,
                               amount=self.draw(_money(100, 60_000)))  # fmt: skip

    def receive(self) -> c.Command:
        return c.ReceiveDonation(year=self.year, on=self.on,
                                 amount=self.draw(_money(100, 500_000)))  # fmt: skip

    def acquire(self) -> c.Command:
        return c.AcquireUnits(country=self.draw(st.sampled_from(COUNTRIES)), on=self.on,
                              units=self.draw(st.integers(1, 300)))  # fmt: skip

    def dispose(self) -> c.Command:
        return c.DisposeUnits(country=self.draw(st.sampled_from(COUNTRIES)), on=self.on,
                              units=self.draw(st.integers(1, 300)))  # fmt: skip

    def pledge(self) -> c.Command:
        return c.PledgeDonation(year=self.year)

    def milestone(self) -> c.Command:
        return c.RecordMilestone(initiative=self.initiative, on=self.on,
                                 name=self.draw(st.sampled_from(MILESTONES)))  # fmt: skip

    def close(self) -> c.Command:
        return c.CloseInitiative(id=self.initiative, on=self.on)


def fresh_store_url(base: str, tmp_path: Path) -> str:
    """A store of its own for one Hypothesis example: a file, or a PostgreSQL schema."""
    name = f"ex_{uuid.uuid4().hex[:12]}"
    if base.startswith("sqlite"):
        return f"sqlite:///{tmp_path / (name + '.db')}"
    import psycopg

    dbname = base.rsplit("/", 1)[1]
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{base}?schema={name}"


def new_app(url: str) -> LedgerApplication:
    return build_application(Settings(store=url, actor="tester"), clock=StepClock())


def run_history(app: LedgerApplication, history: list[c.Command], seal_every: int,
                runner: ProjectionRunner | None = None) -> None:  # fmt: skip
    for index, command in enumerate(history):
        try:
            app.execute(command)
        except DomainError:
            continue
        if seal_every and index % seal_every == seal_every - 1:
            app.seal()
        if runner is not None and index % 3 == 0:
            runner.catch_up()


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])  # fmt: skip
@given(history=money_histories(), page=st.integers(1, 6),
       every=st.integers(1, 8), seal_every=st.integers(0, 12))  # fmt: skip
def test_incremental_projections_equal_a_rebuild(
    store_url: str, tmp_path: Path, history: list[c.Command], page: int, every: int,
    seal_every: int,
) -> None:  # fmt: skip
    app = new_app(fresh_store_url(store_url, tmp_path))
    db = ProjectionDB(app.store.location)
    runner = ProjectionRunner(app.store, db, page=page, snapshot_every=every)
    try:
        run_history(app, history, seal_every, runner)
        runner.catch_up()
        incremental = dump(db)
        runner.rebuild()
        assert dump(db) == incremental
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


def test_cli_balances_json_rows(reference: LedgerApplication) -> None:
    url = _url_of(reference.store)
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


def test_cli_audit_csv_is_the_auditors_file(reference: LedgerApplication) -> None:
    url = _url_of(reference.store)
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
    reference: LedgerApplication, tmp_path: Path
) -> None:
    url = _url_of(reference.store)
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


def test_cli_replay_rebuilds_and_reports(reference: LedgerApplication) -> None:
    url = _url_of(reference.store)
    summary = invoke(url, "replay")
    assert summary["events"] == reference.store.max_position()
    assert summary["projections"] == list(PROJECTIONS)
    one = invoke(url, "replay", "--projection", "postings")
    assert one["projections"] == ["postings"]
    result = CliRunner().invoke(cli, ["--store", url, "replay", "--projection", "nope"])
    assert result.exit_code == 2
