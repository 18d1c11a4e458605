"""The documents read a cut as `balances` and `audit` do: a reversal made after the cut
date takes back a fact effective before it, so the statement built `--to` that date
shows the figures `balances --to` prints, and the IATI export of the corrected books
is valid.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from tests.documents_ledgers import clock, record_reference_case, run


def figure(html: str, scope: str, name: str) -> str:
    found = re.search(rf'data-scope="{scope}" data-figure="{name}" data-value="([^"]*)"', html)
    assert found is not None, (scope, name)
    return found.group(1)


def test_a_statement_to_a_date_counts_a_later_reversal_as_balances_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = build_application(Settings(store=url, actor="auditor"), clock=clock())
    try:
        record_reference_case(app, hostile=False)
        first = next(app.store.envelopes(types=["DonationReceived"]))  # 15 December 2021
        app.execute(c.ReverseFact(id=str(first.position), reason="returned by the bank",
                                  on=date(2022, 1, 10)))  # fmt: skip
    finally:
        app.store.close()
    years = run(url, "balances", "--by", "year", "--to", "2021-12-31")
    year_2021 = next(row for row in years if row["year"] == 2021)
    assert year_2021["received"] == "0.00"  # the receipt of 15 December is taken back
    out = tmp_path / "statement.html"
    result = CliRunner().invoke(cli, ["--store", url, "statement", "--year", "2021", "--to",
                                      "2021-12-31", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    for name in ("pledged", "received", "allocated", "released", "unallocated"):
        assert figure(html, "year", name) == year_2021[name], name
    iati = ["export", "iati", "--out", str(tmp_path / "books.xml"),
            "--reporting-org", "NL-KVK-41202535", "--reporting-org-name", "SOS"]  # fmt: skip
    exported = CliRunner().invoke(cli, ["--store", url, *iati])
    assert exported.exit_code == 0, exported.output
