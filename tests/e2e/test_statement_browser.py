"""The yearly statement in a real browser: Debian's Chromium driven by Playwright.

The reference case's statement is opened from its file: no console message, no page
error, no request but the file itself; every figure read from the DOM (its data-
attributes) equals what `balances --format json` and `audit --format json` print for the
same cut; the screenshot is a picture; the page printed to PDF holds the same totals.
Chromium comes from the system (`.ci/run` installs it); with CI set a missing browser
fails these tests instead of skipping them.
"""

from __future__ import annotations

import io
import os
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.numbers import format_currency
from click.testing import CliRunner

from homeledger.cli.main import cli
from homeledger.projections.verify import CHECK_NAMES
from tests.documents_ledgers import (
    HOSTILE_EVIDENCE,
    HOSTILE_ID,
    HOSTILE_NAME,
    RecordedLedger,
    recorded_ledger,
    run,
)
from tests.helpers import unavailable

CHROMIUM = os.environ.get("HOMELEDGER_CHROMIUM") or shutil.which("chromium")
YEAR_FIGURES = ("pledged", "received", "outstanding", "allocated", "released", "unallocated")
LOCALES = {
    "en": "€11,800,000.00",
    "nl": "€\xa011.800.000,00",
    "nb": "11\xa0800\xa0000,00\xa0€",
    "sv": "11\xa0800\xa0000,00\xa0€",
    "de": "11.800.000,00\xa0€",
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedLedger:
    folder = tmp_path_factory.mktemp("statement")
    return recorded_ledger(f"sqlite:///{folder / 'ledger.db'}", folder)


def statement(recorded: RecordedLedger, year: int, *extra: str, name: str | None = None) -> Path:
    out = recorded.folder / (name or f"statement-{year}.html")
    result = CliRunner().invoke(cli, ["--store", recorded.url, "statement", "--year", str(year),
                                      "--out", str(out), *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        unavailable("chromium not found: apt-get install -y --no-install-recommends chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--disable-gpu"])
        yield launched
        launched.close()


@dataclass
class Seen:
    url: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def opener(path: Path, **options: Any) -> tuple[Any, Seen]:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        seen = Seen(path.resolve().as_uri())
        page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.on("request", lambda r: seen.requests.append(r.url))
        page.on("requestfailed", lambda r: seen.failed.append(r.url))
        page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
        page.goto(seen.url, wait_until="load")
        return page, seen

    yield opener
    for context in contexts:
        context.close()


def assert_quiet(page: Any, seen: Seen) -> None:
    """Nothing logged, nothing fetched: the file is the only request."""
    assert seen.console == [] and seen.errors == [] and seen.dialogs == []
    assert seen.failed == [] and seen.requests == [seen.url]
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert page.evaluate("document.scripts.length") == 0


def value(page: Any, selector: str) -> str:
    found = page.locator(selector)
    assert found.count() == 1, selector
    return str(found.get_attribute("data-value"))


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    # NFKC: the text has ligatures (U+FB01) and no-break spaces.
    pages = PdfReader(io.BytesIO(data)).pages
    return unicodedata.normalize("NFKC", "\n".join(p.extract_text() for p in pages))


def money(amount: str) -> str:
    return unicodedata.normalize("NFKC", format_currency(Decimal(amount), "EUR", locale="en"))


def test_the_reference_statement_equals_balances_and_audit(
    recorded: RecordedLedger, open_page: Any, tmp_path: Path
) -> None:
    out = statement(recorded, 2022)
    page, seen = open_page(out, viewport={"width": 1200, "height": 900})
    assert_quiet(page, seen)
    position = ["--as-of-position", str(recorded.head)]
    years = run(recorded.url, "balances", "--by", "year", *position)
    this_year = next(row for row in years if row["year"] == 2022)
    for name in YEAR_FIGURES:
        assert value(page, f'#year-figures [data-scope="year"][data-figure="{name}"]') == \
            this_year[name]  # fmt: skip
        total = sum((Decimal(row[name]) for row in years), Decimal("0.00"))
        assert value(page, f'#year-figures [data-scope="total"][data-figure="{name}"]') == \
            str(total)  # fmt: skip
    by_initiative = run(recorded.url, "balances", "--by", "initiative", *position)
    rows_of_year = run(recorded.url, "balances", "--by", "initiative", "--year", "2022", *position)
    of_year = {row["initiative"]: row for row in rows_of_year}
    assert len(by_initiative) == 33
    paid_in_year = Decimal("0.00")
    for row in by_initiative:
        key = row["initiative"]
        line = f'#initiatives-table tr[data-initiative="{key}"]'
        for name in ("allocated", "released", "disbursed", "available"):
            assert value(page, f'{line} [data-scope="total"][data-figure="{name}"]') == row[name]
        for name in ("allocated", "released"):
            expected = of_year[key][name] if key in of_year else "0.00"
            assert value(page, f'{line} [data-scope="year"][data-figure="{name}"]') == expected
        trail = run(recorded.url, "audit", key, *position)
        facts = [r for r in trail if _of_year(r, 2022)]
        paid = sum((Decimal(r["amount"]) for r in trail if r["type"] == "FundsDisbursed"
                    and r["effective_date"].startswith("2022")), Decimal("0.00"))  # fmt: skip
        paid_in_year += paid
        assert value(page, f'{line} [data-scope="year"][data-figure="disbursed"]') == str(paid)
        section = page.locator(f'section[data-section="{key}"] tr[data-position]')
        shown = [int(p) for p in section.evaluate_all("rows => rows.map(r => r.dataset.position)")]
        assert shown == [r["position"] for r in facts]
        for r in facts:
            cell = f'section[data-section="{key}"] tr[data-position="{r["position"]}"] ' \
                   '[data-figure="amount"]'  # fmt: skip
            assert value(page, cell) == (r["change"] or "")
    assert value(page, '#year-figures [data-scope="year"][data-figure="disbursed"]') == \
        str(paid_in_year)  # fmt: skip
    assert value(page, '[data-figure="position"]') == str(recorded.head)
    assert value(page, '[data-figure="verified"]') == "ok"
    checks = page.locator("#checks tr[data-check]")
    assert checks.count() == len(CHECK_NAMES)  # every check verify makes
    assert set(checks.evaluate_all("rows => rows.map(r => r.dataset.value)")) == {"ok"}
    shown = run(recorded.url, "events", "show", str(recorded.head))
    last = shown[0] if isinstance(shown, list) else shown
    assert value(page, '[data-figure="head-hash"]') == last["hash"]
    assert value(page, '[data-figure="seal-position"]') == str(recorded.head - 1)

    # Every chart: an SVG with a title, and a table with one cell per bar.
    charts = page.locator("[data-chart]")
    assert charts.count() == 6
    for chart in charts.all():
        assert chart.locator("svg[role=img] title").text_content().strip()
        cells = chart.locator("td[data-value]").count()
        assert cells > 0
    pledged = '[data-chart="years"] td[data-series="Pledged"][data-label="2022"]'
    assert value(page, pledged) == this_year["pledged"]
    timeline = page.locator('[data-chart="milestones"] tbody tr')
    assert timeline.count() == 6  # five in the reference case and the hostile one

    png = tmp_path / "statement.png"
    page.screenshot(path=str(png), full_page=True)
    _assert_picture(png)

    text = pdf_text(page.pdf(format="A4", print_background=True, prefer_css_page_size=True))
    for amount in (this_year["pledged"], this_year["received"], this_year["allocated"],
                   str(paid_in_year)):  # fmt: skip
        assert money(amount) in text
    assert "file://" not in text


def _of_year(row: dict[str, Any], year: int) -> bool:
    if row["type"] in ("FundsAllocated", "AllocationReleased"):
        return bool(row["year"] == year)
    return bool(row["effective_date"].startswith(str(year)))


def _assert_picture(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as shot:
        image = shot.convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    white = max(colours)[0] / (image.width * image.height)
    assert len(colours) > 100 and white < 0.95


def test_a_hostile_name_shows_as_text(recorded: RecordedLedger, open_page: Any) -> None:
    page, seen = open_page(statement(recorded, 2022))
    assert_quiet(page, seen)
    row = page.locator(f'#initiatives-table tr[data-initiative="{HOSTILE_ID}"]')
    assert row.locator('[data-figure="name"]').text_content() == HOSTILE_NAME
    section = page.locator(f'section[data-section="{HOSTILE_ID}"]')
    assert section.locator("h2").text_content() == HOSTILE_NAME
    assert HOSTILE_EVIDENCE in section.text_content()
    assert page.locator("img").count() == 0  # the evidence's <img> is text
    programmes = page.locator('[data-chart="programmes"]')
    assert "<b>bold</b> programme" in programmes.locator("svg").text_content()  # as text
    assert programmes.locator("b").count() == 0
    assert seen.dialogs == []


def test_a_closed_initiative_and_the_release_before_it(
    recorded: RecordedLedger, open_page: Any
) -> None:
    section = 'section[data-section="fi-family-coaching"]'
    kinds = "rows => rows.map(r => r.dataset.type)"
    page, seen = open_page(statement(recorded, 2022))
    assert_quiet(page, seen)
    assert value(page, f'{section} [data-figure="closed-on"]') == "2022-08-31"
    assert page.locator(f"{section} tr[data-type]").evaluate_all(kinds) == ["InitiativeClosed"]
    assert "(closed)" in page.locator('tr[data-initiative="fi-family-coaching"] th').text_content()
    # The release gave back 2021 money: it is a line of the 2021 statement (as is the
    # registration, dated at the partnership's start in 2021).
    page, seen = open_page(statement(recorded, 2021))
    assert_quiet(page, seen)
    lines = page.locator(f"{section} tr[data-type]")
    assert lines.evaluate_all(kinds) == [
        "InitiativeRegistered", "FundsAllocated", "AllocationReleased"]  # fmt: skip
    released = run(recorded.url, "balances", "--by", "initiative", "--year", "2021")
    row = next(r for r in released if r["initiative"] == "fi-family-coaching")
    line = '#initiatives-table tr[data-initiative="fi-family-coaching"]'
    assert value(page, f'{line} [data-scope="year"][data-figure="released"]') == row["released"]


def test_a_year_without_a_pledge(recorded: RecordedLedger, open_page: Any) -> None:
    page, seen = open_page(statement(recorded, 2023))
    assert_quiet(page, seen)
    assert page.locator('[data-figure="no-pledge"]').count() == 1
    for name in YEAR_FIGURES:
        assert value(page, f'#year-figures [data-scope="year"][data-figure="{name}"]') == "0.00"
    years = run(recorded.url, "balances", "--by", "year")
    total = sum((Decimal(row["pledged"]) for row in years), Decimal("0.00"))
    assert value(page, '#year-figures [data-scope="total"][data-figure="pledged"]') == str(total)


@pytest.mark.parametrize("locale", list(LOCALES), ids=list(LOCALES))
def test_amounts_and_dates_in_each_locale(
    recorded: RecordedLedger, open_page: Any, locale: str
) -> None:
    from babel.dates import format_date

    out = statement(recorded, 2022, "--locale", locale, "--no-verify", name=f"s-{locale}.html")
    page, seen = open_page(out)
    assert_quiet(page, seen)
    assert page.locator("html").get_attribute("lang") == locale
    cell = page.locator('#year-figures [data-scope="year"][data-figure="pledged"]')
    assert cell.text_content() == LOCALES[locale]
    start = page.locator('[data-figure="start"]')
    assert start.text_content() == format_date(date(2021, 7, 1), format="long", locale=locale)


def test_on_a_phone_nothing_scrolls_sideways_but_the_wide_tables(
    recorded: RecordedLedger, open_page: Any
) -> None:
    page, seen = open_page(statement(recorded, 2022), viewport={"width": 375, "height": 812},
                           device_scale_factor=2, is_mobile=True, has_touch=True)  # fmt: skip
    assert_quiet(page, seen)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for svg in page.locator("figure svg").all():
        assert svg.bounding_box()["width"] <= 375


def test_the_pdf_from_the_same_html_holds_the_same_totals(recorded: RecordedLedger) -> None:
    out = statement(recorded, 2022, name="statement-2022.pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    years = run(recorded.url, "balances", "--by", "year")
    this_year = next(row for row in years if row["year"] == 2022)
    for name in ("pledged", "received", "allocated", "unallocated"):
        assert money(this_year[name]) in text
    assert HOSTILE_NAME in text.replace("\n", " ")
    again = statement(recorded, 2022, name="again-2022.pdf")
    assert again.read_bytes() == data  # WeasyPrint's PDF carries no creation time
