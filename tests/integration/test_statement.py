"""`homeledger statement` without a browser: autoescaping, the same bytes for the same cut,
the cut itself (as of a position, --to a date), verify's verdict, and refusals.

The browser tests (tests/e2e/test_statement_browser.py) check what a person sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from homeledger.projections.statement.render import TEMPLATE, environment
from tests.documents_ledgers import (
    HOSTILE_NAME,
    UNWRITABLE,
    RecordedLedger,
    clock,
    record_reference_case,
    recorded_ledger,
    run,
    unwritable_output,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedLedger:
    folder = tmp_path_factory.mktemp("statement")
    return recorded_ledger(f"sqlite:///{folder / 'ledger.db'}", folder)


def statement(url: str, out: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["--store", url, "statement", "--out", str(out), *args])


def figure(html: str, scope: str, name: str) -> str:
    found = re.search(rf'data-scope="{scope}" data-figure="{name}" data-value="([^"]*)"', html)
    assert found is not None, (scope, name)
    return found.group(1)


def test_autoescaping_is_on_for_the_template() -> None:
    env = environment("en", "EUR")
    assert env.autoescape is not False
    assert callable(env.autoescape) and env.autoescape(TEMPLATE) is True


def test_user_input_is_text_and_nothing_is_fetched(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    out = tmp_path / "s.html"
    assert statement(recorded.url, out, "--year", "2022").exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert HOSTILE_NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert not re.search(r"url\((?!#)", html)  # only the charts' own url(#clip-path)
    assert not re.search(r"(src|href)=\"(?!#)", html)
    assert "Content-Security-Policy" in html


def test_the_same_cut_gives_the_same_bytes_in_any_process(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    digests = set()
    for seed in ("1", "2"):
        out = tmp_path / f"s{seed}.html"
        subprocess.run(
            [sys.executable, "-m", "homeledger.cli", "--store", recorded.url, "statement",
             "--year", "2022", "--out", str(out)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_as_of_a_position_the_figures_are_those_balances_gives(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    earlier = recorded.head - 20
    out = tmp_path / "earlier.html"
    result = statement(recorded.url, out, "--year", "2022", "--as-of-position", str(earlier))
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    years = run(recorded.url, "balances", "--by", "year", "--as-of-position", str(earlier))
    row = next(r for r in years if r["year"] == 2022)
    for name in ("pledged", "received", "allocated", "released", "unallocated"):
        assert figure(html, "year", name) == row[name]
    assert f'data-figure="position" data-value="{earlier}"' in html


def test_to_a_date_keeps_the_facts_effective_by_then(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    out = tmp_path / "to.html"
    assert statement(recorded.url, out, "--year", "2021", "--to", "2021-12-31").exit_code == 0
    html = out.read_text(encoding="utf-8")
    # Received for 2021 by 31 December 2021: the first instalment only.
    assert figure(html, "year", "received") == "5000000.00"
    assert figure(html, "total", "disbursed") == "0.00"  # the first payment was in 2022
    assert 'data-figure="to" data-value="2021-12-31"' in html


def test_the_summary_in_json(recorded: RecordedLedger, tmp_path: Path) -> None:
    out = tmp_path / "s.html"
    result = CliRunner().invoke(
        cli,
        [
            "--store",
            recorded.url,
            "--format",
            "json",
            "statement",
            "--year",
            "2022",
            "--out",
            str(out),
            "--no-verify",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["position"] == recorded.head and summary["verified"] is None
    assert 'data-figure="verified" data-value="none"' in out.read_text(encoding="utf-8")


def test_a_failed_check_is_in_the_statement_and_exits_1(
    recorded: RecordedLedger, tmp_path: Path
) -> None:
    copy = tmp_path / "tampered.db"
    with sqlite3.connect(recorded.folder / "ledger.db") as source, \
            sqlite3.connect(copy) as target:  # fmt: skip
        source.backup(target)
    with sqlite3.connect(copy) as conn:  # a stored read model edited behind verify's back
        conn.execute("UPDATE hl_proj_audit SET amount = amount + 100 WHERE type = "
                     "'FundsAllocated' AND initiative = 'nl-youthcan'")  # fmt: skip
    out = tmp_path / "s.html"
    result = statement(f"sqlite:///{copy}", out, "--year", "2022")
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "projections" in result.stderr
    html = out.read_text(encoding="utf-8")
    assert 'data-figure="verified" data-value="failed"' in html
    assert 'data-check="projections" data-value="failed"' in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "2022", "--locale", "xx_YY_ZZ"], "--locale"),
        (["--year", "12345"], "--year"),
        (["--year", "2020"], "started in 2021"),
        (["--year", "2022", "--to", "31-12-2022"], "--to"),
        (["--year", "2022", "--as-of-position", "1", "--as-of", "2023-01-01"], "not both"),
        (["--year", "2022", "--as-of", "yesterday"], "--as-of"),
    ],
    ids=["locale", "year", "before-start", "to", "two-cuts", "as-of"],
)
def test_bad_input_exits_2_and_writes_nothing(
    recorded: RecordedLedger, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "s.html"
    result = statement(recorded.url, out, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", UNWRITABLE)
def test_an_unwritable_output_exits_2_and_writes_nothing(
    recorded: RecordedLedger, tmp_path: Path, where: str
) -> None:
    out = unwritable_output(tmp_path, where, ".html")
    result = statement(recorded.url, out, "--year", "2022")
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder.html"]


def test_an_empty_store_has_nothing_to_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = build_application(Settings(store=url, actor="t"), clock=clock())
    app.store.close()
    result = statement(url, tmp_path / "s.html", "--year", "2022")
    assert result.exit_code == 2 and "no facts" in result.stderr
    assert not (tmp_path / "s.html").exists()


@pytest.mark.parametrize("detail_limit", [5000, 10], ids=["per-initiative", "per-country"])
def test_on_either_store_the_figures_are_the_balances(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail_limit: int
) -> None:
    """Both stores, and both layouts: a section per initiative with every fact, or (a
    year with more facts than the limit) per country, with the receipts counted from the
    double-entry postings."""
    from homeledger.projections.statement import view

    monkeypatch.setattr(view, "DETAIL_LIMIT", detail_limit)
    app = build_application(Settings(store=store_url, actor="auditor"), clock=clock())
    record_reference_case(app)
    app.store.close()
    out = tmp_path / "s.html"
    result = statement(store_url, out, "--year", "2022", "--no-verify")
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    row = next(r for r in run(store_url, "balances", "--by", "year") if r["year"] == 2022)
    for name in ("pledged", "received", "outstanding", "allocated", "released", "unallocated"):
        assert figure(html, "year", name) == row[name]
    if detail_limit < 100:
        assert 'data-section="GW"' in html and 'data-section="gw-bissau-village"' not in html
        assert 'id="receipts"' not in html
        assert 'data-figure="receipts" data-value="1"' in html
    else:
        assert 'data-section="gw-bissau-village"' in html
        assert 'id="receipts"' in html
