"""A property of the IATI export: for any ledger the rules let through, the file is valid
IATI 2.03 and its sums are the ledger's balances.

Each example records a random history (tests/strategies.py; the commands the ledger
refuses are skipped) in a fresh SQLite store, exports it, validates it against the
packaged schema and compares, per initiative, the commitments with allocated - released
and the disbursements with disbursed, and per pledge year the receipts with received.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from lxml import etree

from homeledger.domain import commands as c
from homeledger.projections.as_of import PointInTime
from homeledger.projections.cut import open_cut
from homeledger.projections.db import ProjectionDB
from homeledger.projections.iati.mapping import ExportOptions, export_iati
from homeledger.projections.iati.schema import load_schema
from homeledger.projections.runner import ProjectionRunner
from tests import strategies as s
from tests.helpers import StepClock, open_app, run_history

REF = "GB-CHC-1234567"
# Recorded after every effective date the strategies draw (2021-2024).
RECORDED_FROM = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
ZERO = Decimal("0.00")


def _record(url: str, history: list[c.Command]) -> None:
    app = open_app(url, actor="hypothesis", clock=StepClock(RECORDED_FROM))
    try:
        run_history(app, history, seal_every=0)  # what a rule refuses records nothing
    finally:
        app.store.close()


def _sums(tree: etree._ElementTree) -> dict[tuple[str, str], Decimal]:
    total: dict[tuple[str, str], Decimal] = {}
    for activity in tree.iter("iati-activity"):
        ident = activity.findtext("iati-identifier")
        for t in activity.iter("transaction"):
            key = (ident, t.find("transaction-type").get("code"))
            total[key] = total.get(key, ZERO) + Decimal(t.findtext("value"))
    return total


@settings(max_examples=25)
@given(history=s.ledger_histories(max_size=30))
def test_any_ledger_exports_valid_iati_whose_sums_are_its_balances(
    history: list[c.Command],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        _record(url, history)
        app = open_app(url)
        store = app.store
        db = ProjectionDB(store.location)
        try:
            ProjectionRunner(store, db).catch_up()
            reader = PointInTime(store, db)
            head = reader.projected_to()
            ledger = open_cut(store, reader, head)
            out = Path(folder) / "export.xml"
            export_iati(ledger, out, ExportOptions(REF, "Publisher"))
            tree = etree.parse(str(out))
            assert load_schema().validate(tree), load_schema().error_log
            total = _sums(tree)
            balances = reader.balances(head)
            for row in balances.rows("initiative"):
                ident = f"{REF}-{row['initiative']}"
                net = Decimal(row["allocated"]) - Decimal(row["released"])
                assert total.get((ident, "2"), ZERO) == net
                assert total.get((ident, "3"), ZERO) == Decimal(row["disbursed"])
            parent = tree.find("iati-activity").findtext("iati-identifier")
            received = sum((Decimal(r["received"]) for r in balances.year_rows()), ZERO)
            assert total.get((parent, "1"), ZERO) == received
            assert len(tree.findall("iati-activity")) == 1 + len(balances.initiatives)
        finally:
            db.close()
            store.close()
