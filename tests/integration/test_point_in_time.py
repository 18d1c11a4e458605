"""Point in time: every read as of position N equals a fresh replay of facts 1..N.

Random histories run on SQLite and PostgreSQL with tiny pages and checkpoints every
few positions, so the reads go through every path: the current state, a checkpoint
plus replay, and log tables cut at N. Recording clocks may step back (two writers
whose clocks disagree), and "as of time T" must still be the longest prefix of the
ledger recorded at or before T.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.envelope import Envelope
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from homeledger.projections.as_of import PointInTime, UnknownInitiativeError
from homeledger.projections.db import ProjectionDB
from homeledger.projections.read_models import ReadModels
from homeledger.projections.runner import ProjectionRunner
from tests.helpers import StepClock, fresh_store_url, open_app, run_history
from tests.strategies import SLUGS, money_histories

DATES = (date(2021, 6, 30), date(2021, 12, 31), date(2022, 7, 1), date(2023, 12, 31),
         date(2024, 12, 31))  # fmt: skip


def expected_reads(state: ReadModels) -> dict[str, Any]:
    """What a fresh replay answers: balances, trails, portfolio, trial balance."""
    return {
        "balances": {by: state.balance_rows(by) for by in ("year", "initiative", "country")},
        "years": {year: state.balance_rows("initiative", year) for year in (2021, 2022)},
        "audit": {slug: state.audit_rows(slug) for slug in SLUGS},
        "portfolio": {on: state.portfolio(on) for on in DATES},
        "trial": state.trial_balance().to_dict(),
    }


def stored_reads(reader: PointInTime, n: int) -> dict[str, Any]:
    balances = reader.balances(n)
    audit = {}
    for slug in SLUGS:
        try:
            audit[slug] = reader.audit_rows(slug, n)
        except UnknownInitiativeError:
            audit[slug] = []
    return {
        "balances": {by: balances.rows(by) for by in ("year", "initiative", "country")},
        "years": {year: balances.rows("initiative", year) for year in (2021, 2022)},
        "audit": audit,
        "portfolio": {on: reader.portfolio(n, on) for on in DATES},
        "trial": reader.trial_balance(n).to_dict(),
    }


def prefix_recorded_by(envelopes: list[Envelope], moment: datetime) -> int:
    """The definition: the largest N with every fact 1..N recorded at or before T."""
    position = 0
    for envelope in envelopes:
        if envelope.recorded_at > moment:
            break
        position = envelope.position
    return position


# The fixtures only name a kind of store: each example records on a store of its own.
@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])  # fmt: skip
@given(history=money_histories(max_size=25), every=st.integers(1, 6),
       page=st.integers(1, 5), steps=st.lists(st.integers(-3, 5), max_size=6))  # fmt: skip
def test_as_of_every_position_equals_a_fresh_replay(
    store_url: str, tmp_path: Path, history: list[c.Command], every: int, page: int,
    steps: list[int],
) -> None:  # fmt: skip
    url = fresh_store_url(store_url, tmp_path)
    app = open_app(url, clock=StepClock(steps=steps))
    db = ProjectionDB(app.store.location)
    try:
        run_history(app, history, seal_every=7)
        ProjectionRunner(app.store, db, page=page, snapshot_every=every).catch_up()
        reader = PointInTime(app.store, db)
        envelopes = list(app.store.envelopes())
        state = ReadModels()
        assert stored_reads(reader, 0) == expected_reads(state)
        for envelope in envelopes:
            state.apply(envelope)
            n = envelope.position
            assert state.trial_balance().difference == 0
            assert stored_reads(reader, n) == expected_reads(state), f"as of position {n}"
        for envelope in envelopes:
            for moment in (envelope.recorded_at, envelope.recorded_at - timedelta(microseconds=1)):
                assert reader.resolve(moment=moment) == prefix_recorded_by(envelopes, moment)
        assert reader.resolve(moment=datetime(2000, 1, 1, tzinfo=UTC)) == 0
        assert reader.resolve(position=10**9) == reader.resolve() == len(envelopes)
    finally:
        db.close()
        app.store.close()


def test_a_fresh_replay_is_literal_for_random_positions(
    pro_rata_ledger: LedgerApplication,
) -> None:
    """Not only the incrementally built state: a new state from facts 1..N, for some N."""
    app = pro_rata_ledger
    db = ProjectionDB(app.store.location)
    ProjectionRunner(app.store, db, snapshot_every=4).catch_up()
    reader = PointInTime(app.store, db)
    for n in (0, 1, 5, 9, 13, 17, app.store.max_position()):
        fresh = ReadModels()
        for envelope in app.store.envelopes(1, n) if n else []:
            fresh.apply(envelope)
        assert stored_reads(reader, n) == expected_reads(fresh)
    db.close()


def test_cli_as_of_position_and_time(store_url: str, pro_rata_ledger: LedgerApplication) -> None:
    app = pro_rata_ledger
    envelopes = list(app.store.envelopes())
    pledge_2021 = next(e for e in envelopes if e.type == "DonationPledged")
    runner = CliRunner()

    def balances(*args: str) -> Any:
        result = runner.invoke(cli, ["--store", store_url, "--format", "json", "balances",
                                     *args])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    assert balances("--as-of-position", str(pledge_2021.position - 1)) == []
    at_pledge = balances("--as-of-position", str(pledge_2021.position))
    assert at_pledge[0]["pledged"] == "80602.74" and at_pledge[0]["allocated"] == "0.00"
    moment = pledge_2021.recorded_at.isoformat()
    assert balances("--as-of", moment) == at_pledge
    before = (pledge_2021.recorded_at - timedelta(microseconds=1)).isoformat()
    assert balances("--as-of", before) == []
    both = runner.invoke(cli, ["--store", store_url, "balances", "--as-of", moment,
                               "--as-of-position", "3"])  # fmt: skip
    assert both.exit_code == 2
    bad = runner.invoke(cli, ["--store", store_url, "balances", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "--as-of" in bad.stderr
    trial = runner.invoke(cli, ["--store", store_url, "--format", "json", "trial-balance",
                                "--as-of-position", "12"])  # fmt: skip
    assert '"difference": "0.00"' in trial.stdout
    audit = runner.invoke(cli, ["--store", store_url, "--format", "csv", "audit",
                                "se-youth-jobs", "--as-of-position", "13"])  # fmt: skip
    assert len(audit.stdout.splitlines()) == 1 + 3  # registered, allocated, released
    assert audit.stderr.startswith("as of position 13 (recorded by ")


@pytest.mark.parametrize("n", [0, 3], ids=["empty", "three"])
def test_portfolio_as_of_position_and_on_date(
    store_url: str, pro_rata_ledger: LedgerApplication, n: int
) -> None:
    args = ["--format", "json", "portfolio", "--on", "2021-12-31", "--as-of-position", str(n)]
    result = CliRunner().invoke(cli, ["--store", store_url, *args])
    assert result.exit_code == 0, result.stderr
    held = [{"on": "2021-12-31", "country": "NL", "units": 500, "as_of_position": 3},
            {"on": "2021-12-31", "country": "SE", "units": 1000, "as_of_position": 3}]
    expected: dict[int, list[dict[str, object]]] = {0: [], 3: held}
    assert json.loads(result.stdout) == expected[n]
