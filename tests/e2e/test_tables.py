"""One printer for every answer: tables for people (amounts with thousands separators,
totals, fixed columns for events, a reason instead of an empty table), machine formats
untouched (plain decimals, no total row a script would read as an account, indented
json like trial-balance's)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from homeledger.cli.main import cli
from tests.helpers import init_args


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.env = {"HOMELEDGER_STORE": f"sqlite:///{folder / 'ledger.db'}",
                    "HOMELEDGER_ACTOR": "ops@example.org"}  # fmt: skip
        self.runner = CliRunner()

    def run(self, *args: str) -> Result:
        result = self.runner.invoke(cli, list(args), env=self.env)
        assert result.exit_code == 0, (args, result.output)
        return result


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    book = Ledger(tmp_path)
    book.run(*init_args())
    book.run("units", "acquire", "--country", "NL", "--units", "1000", "--on", "2021-07-05")
    book.run("units", "acquire", "--country", "DE", "--units", "500", "--on", "2021-08-02")
    book.run("pledge", "--year", "2021", "--on", "2021-12-31")
    return book


def test_amounts_have_separators_in_tables_only(ledger: Ledger) -> None:
    pledged = json.loads(ledger.run("--format", "json", "balances").stdout)[0]["pledged"]
    assert "," not in pledged and float(pledged) > 1000
    whole, cents = pledged.split(".")
    assert f"{int(whole):,}.{cents}" in ledger.run("balances").stdout
    assert pledged in ledger.run("--format", "csv", "balances").stdout


def test_balances_json_is_indented_like_trial_balance(ledger: Ledger) -> None:
    text = ledger.run("--format", "json", "balances").stdout
    assert text.startswith("[\n  {\n    \"year\": 2021,")
    assert ledger.run("--format", "json", "trial-balance").stdout.startswith("{\n  ")


def test_the_csv_trial_balance_has_accounts_only_and_the_table_a_total(ledger: Ledger) -> None:
    rows = list(csv.DictReader(io.StringIO(ledger.run("--format", "csv", "trial-balance").stdout)))
    assert rows and all(row["account"] != "total" for row in rows)
    assert ledger.run("trial-balance").stdout.splitlines()[-1].startswith("total ")


def test_portfolio_has_a_total_in_the_table(ledger: Ledger) -> None:
    lines = ledger.run("portfolio", "--on", "2022-01-01").stdout.splitlines()
    assert lines[-1].split()[1:] == ["total", "1500"]
    rows = list(csv.DictReader(io.StringIO(
        ledger.run("--format", "csv", "portfolio", "--on", "2022-01-01").stdout)))
    assert [r["country"] for r in rows] == ["DE", "NL"]


@pytest.mark.parametrize(("args", "why"), [
    (["report", "--year", "2030"], "no pledge, allocation, disbursement or milestone"),
    (["report", "--year", "2019"], "no pledge, allocation, disbursement or milestone"),
    (["balances", "--year", "2030"], "no money recorded for 2030"),
    (["events", "list", "--type", "FundsAllocated"], "no event matches the filters"),
    (["portfolio", "--on", "2020-01-01"], "no homes held on 2020-01-01"),
], ids=["report-later", "report-before-start", "balances", "events-list", "portfolio"])  # fmt: skip
def test_an_empty_table_says_why_in_one_line(ledger: Ledger, args: list[str], why: str) -> None:
    result = ledger.run(*args)
    assert result.stdout == ""
    assert why in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    machine = ledger.run("--format", "json", *args)
    assert machine.stderr == ""  # a script gets its empty answer, silently


def test_events_share_fixed_columns_with_no_leading_space(ledger: Ledger) -> None:
    listed = ledger.run("events", "list").stdout.splitlines()
    assert listed[0].startswith("POSITION  RECORDED AT")
    recorded = ledger.run("units", "acquire", "--country", "SE", "--units", "7", "--on",
                          "2022-01-03").stdout.splitlines()  # fmt: skip
    assert recorded[0] == listed[0]  # the same header, the same widths
    assert len(recorded[1]) - len(recorded[1].lstrip()) == len("POSITION") - 1


def test_replay_puts_no_json_in_a_cell(ledger: Ledger) -> None:
    line = next(x for x in ledger.run("replay").stdout.splitlines() if x.startswith("projections"))
    assert "[" not in line and "balances, " in line
