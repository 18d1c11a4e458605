"""The statement as one self-contained HTML file (and a PDF from the same HTML).

Jinja2 with autoescaping on (every name, reason and piece of evidence is user input:
text, never markup), Babel for amounts and dates in the chosen locale, the charts
inlined as SVG. No script, no stylesheet or font fetched: a Content-Security-Policy
forbids the page from fetching anything at all.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from homeledger.domain.money import fmt
from homeledger.projections.statement.charts import charts_for
from homeledger.projections.statement.view import Statement

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE = "statement.html.j2"
TESTED_LOCALES = ("en", "nl", "nb", "sv", "de")
PDF_LIBRARIES = "libpango-1.0-0 libpangoft2-1.0-0"


class StatementLocaleError(ValueError):
    """A locale Babel does not know."""


class PdfUnavailableError(RuntimeError):
    """WeasyPrint (or the system libraries it needs) is missing."""


def check_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise StatementLocaleError(
            f"--locale: unknown locale {locale[:20]!r} (for example: {', '.join(TESTED_LOCALES)})"
        ) from None


def environment(locale: str, currency: str) -> Environment:
    """Jinja2 bound to one locale. The template's name ends in `.html.j2`, so the
    compound suffixes are listed: `select_autoescape` matches the name's end only."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml", "html.j2", "xml.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["money"] = partial(_money, currency=currency, locale=locale)
    env.filters["number"] = partial(_number, locale=locale)
    env.filters["date"] = partial(_date, locale=locale)
    env.filters["datetime"] = partial(_datetime, locale=locale)
    env.filters["wire"] = _wire
    env.globals["lang"] = check_locale(locale).language
    return env


@lru_cache(maxsize=4096)
def _money(value: Decimal, currency: str, locale: str) -> str:
    return str(format_currency(value, currency, locale=locale))


def _number(value: int | Decimal, locale: str) -> str:
    return str(format_decimal(value, locale=locale))


def _date(value: date, locale: str) -> str:
    return str(format_date(value, format="long", locale=locale))


def _datetime(value: datetime, locale: str) -> str:
    return str(format_datetime(value, format="medium", tzinfo=None, locale=locale)) + " UTC"


def _wire(value: Any) -> str:
    """The machine form for data-value: money as two-decimal strings, dates ISO."""
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def render_html(statement: Statement, locale: str = "en") -> str:
    env = environment(locale, statement.terms.currency)
    charts = charts_for(statement, locale)
    return env.get_template(TEMPLATE).render(s=statement, charts=charts, locale=locale)


def write_pdf(html: str, out: Path) -> None:
    """The PDF of the HTML, with WeasyPrint (byte-stable: no creation date)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango is missing from the system
        raise PdfUnavailableError(
            f"cannot write a PDF: WeasyPrint could not load ({str(exc).splitlines()[0][:120]}); "
            f"install the system's Pango (Debian: apt-get install {PDF_LIBRARIES}) "
            "or write the statement as .html"
        ) from None
    import logging

    # matplotlib's SVG style attributes make WeasyPrint log harmless warnings.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    weasyprint.HTML(string=html, base_url=None).write_pdf(out, pdf_variant="pdf/ua-1")
