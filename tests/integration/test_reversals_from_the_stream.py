"""A consumer built from the stream alone reaches the store's figures after reversals, on
SQLite and PostgreSQL: balances, trails, portfolio, postings, and reads as of a position
and by business date. Each reversal is published on its reversed fact's subject, and
the witness of the stream (`verify --against-nats`) finds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import NatsServer
from homeledger.domain import commands as c
from homeledger.domain import reference_case
from tests.nats_helpers import cli_env, invoke, read_stream

pytestmark = pytest.mark.nats

APRIL = date(2022, 4, 4)


def position_of(app: LedgerApplication, kind: str, nth: int = 0) -> int:
    return [e.position for e in app.store.envelopes(types=[kind])][nth]


@pytest.fixture
def ledger(make_app: Callable[..., LedgerApplication], store_url: str) -> LedgerApplication:
    """The reference case with one fact of each reversible kind reversed, some recorded
    again, a pledge adjusted after a reversed acquisition, and a seal."""
    app = make_app(store_url, actor="ops@example.org")
    app.execute_batch(reference_case.commands())
    receipt = position_of(app, "DonationReceived", 1)
    paid = position_of(app, "FundsDisbursed", 0)
    reached = position_of(app, "MilestoneReached", 1)  # the solar panels, 15 March 2022
    bought = position_of(app, "UnitsAcquired", 10)  # the Berlin portfolio, 1 October 2021
    sold = position_of(app, "UnitsDisposed", 0)
    for position, reason in ((receipt, "typed twice"), (paid, "paid to the wrong account"),
                             (reached, "not reached yet"), (bought, "deal fell through"),
                             (sold, "sale cancelled")):  # fmt: skip
        app.execute(c.ReverseFact(id=str(position), reason=reason, on=APRIL))
    solar = reference_case.GW_HUB_MILESTONES[0][0]
    app.execute_batch([
        c.ReceiveDonation(year=2021, amount="6115000.00", on=date(2022, 3, 31)),
        c.RecordMilestone(initiative="gw-bissau-village", name=solar, on=date(2022, 4, 20)),
        c.PledgeDonation(year=2021, on=APRIL),
    ])  # fmt: skip
    app.seal()
    return app


@pytest.fixture
def consumer_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'consumer.db'}"
    return str(request.getfixturevalue("pg_url"))  # another fresh database


READS = [
    ("balances", "--by", "year"),
    ("balances", "--by", "initiative"),
    ("balances", "--by", "country"),
    ("balances", "--by", "year", "--to", "2021-12-31"),
    ("balances", "--by", "initiative", "--to", "2022-01-31"),
    ("trial-balance",),
    ("portfolio", "--on", "2021-12-31"),
    ("audit", "gw-bissau-village"),
    ("audit", "gw-bissau-village", "--to", "2022-02-28"),
    ("audit", "nl-siblings-together"),
    ("report", "--year", "2021"),
    ("report", "--year", "2022", "--to", "2022-06-30"),
]


def read(env: dict[str, str], store: str, args: tuple[str, ...]) -> Any:
    result = invoke(["--store", store, "--format", "json", *args], env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_consumer_reaches_the_stores_figures_after_reversals(
    ledger: LedgerApplication, server: NatsServer, store_url: str, consumer_url: str
) -> None:
    env = cli_env(store_url, server.url)
    assert invoke(["relay", "--once"], env).exit_code == 0
    projected = invoke(["--store", consumer_url, "--format", "json", "project", "--from-nats",
                        "--durable", "books", "--once"], env)  # fmt: skip
    assert projected.exit_code == 0, projected.output
    head = ledger.store.max_position()
    assert json.loads(projected.stdout)["position"] == head
    for args in READS:
        assert read(env, consumer_url, args) == read(env, store_url, args), args
    # Read as of a position before the reversals, on both sides alike.
    first = next(e.position for e in ledger.store.envelopes(types=["FactReversed"]))
    for args in (("balances", "--as-of-position", str(first - 1)),
                 ("balances", "--as-of-position", str(first + 2), "--to", "2021-12-31")):
        assert read(env, consumer_url, args) == read(env, store_url, args), args  # fmt: skip
    witnessed = invoke(["--format", "json", "verify", "--against-nats"], env)
    assert witnessed.exit_code == 0, witnessed.output
    # The reversals' subjects are their reversed facts' scopes.
    subjects = [m.subject for m in read_stream(server.url) if ".FactReversed." in m.subject]
    assert subjects == [
        "homeledger.events.FactReversed.2021",
        "homeledger.events.FactReversed.gw-bissau-village",
        "homeledger.events.FactReversed.gw-bissau-village",
        "homeledger.events.FactReversed.DE",
        "homeledger.events.FactReversed.SE",
    ]
    # The figures of the books corrected: the 1,850 Berlin homes gone and the 600 Malmo
    # homes back, so the 2021 pledge adjusted from 112,400 homes to 111,150; the second
    # 2021 receipt reversed and recorded again for what that leaves outstanding.
    (year_2021, _) = read(env, consumer_url, ("balances", "--by", "year"))
    assert sum(reference_case.HOMES_AT_START.values()) == 111_150
    assert (year_2021["pledged"], year_2021["received"]) == ("11115000.00", "11115000.00")
