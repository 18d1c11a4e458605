"""Documents people read or file: the yearly statement and the IATI 2.03 export.

Both are built from the read models at a cut (the head, or `--as-of-position N` /
`--as-of TIME`), written to a file beside the target and renamed into place only when
complete: bad input, a failure or Ctrl-C leave `--out` as it was. The heavy libraries
(Jinja2, Babel, matplotlib, WeasyPrint, lxml) are imported inside these commands only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import click

from homeledger.cli.audit import as_of_options, resolve
from homeledger.cli.bootstrap import Projections
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import FINDING, INTERNAL, Failure, InputError
from homeledger.cli.render import emit_object
from homeledger.projections.cut import LedgerCut, NothingToShowError, open_cut
from homeledger.projections.output_file import OutputPathError, check_writable

MIN_YEAR, MAX_YEAR = 1900, 9999


def _year(value: int | None, flag: str = "--year") -> None:
    if value is not None and not MIN_YEAR <= value <= MAX_YEAR:
        raise InputError(f"{flag}: {value} is not a year between {MIN_YEAR} and {MAX_YEAR}")


def _date(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{flag}: {text[:40]!r} is not a date in the form YYYY-MM-DD") from None


def _out(path: str, suffixes: tuple[str, ...]) -> Path:
    try:
        return check_writable(Path(path), suffixes)
    except OutputPathError as exc:
        raise InputError(str(exc)) from None


def _ledger(ctx: Context, as_of_position: int | None, as_of: str | None,
            to: date | None = None) -> tuple[Projections, LedgerCut]:  # fmt: skip
    projections = ctx.services.projections()
    projections.runner.bring_up_to_date()
    position = resolve(projections, as_of_position, as_of)
    store = projections.store or ctx.services.store()
    try:
        return projections, open_cut(store, projections.reader, position, to)
    except NothingToShowError as exc:
        raise InputError(str(exc)) from None


def _done(ctx: Context, summary: dict[str, Any], line: str) -> None:
    if ctx.fmt in ("json", "jsonl"):
        emit_object(summary, ctx.fmt)
    else:
        click.echo(line)


@dataclass(frozen=True)
class StatementWritten:
    out: Path
    year: int
    position: int
    head_hash: str
    locale: str
    verified: bool | None
    failed: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "year": self.year,
            "position": self.position,
            "head_hash": self.head_hash,
            "locale": self.locale,
            "verified": self.verified,
        }

    def line(self) -> str:
        verdict = "not run" if self.verified is None else "ok" if self.verified else "FAILED"
        return (f"wrote {self.out}: statement {self.year} as of position {self.position}, "
                f"verify {verdict}")  # fmt: skip


def write_statement(
    ctx: Context, year: int, out: str, *, locale: str = "en", to: date | None = None,
    verify: bool = True, as_of_position: int | None = None, as_of: str | None = None,
) -> StatementWritten:  # fmt: skip
    """Build the statement of `year` at the cut and write it to `out` (HTML or PDF)."""
    from homeledger.projections.statement.render import (
        PdfUnavailableError,
        StatementLocaleError,
        check_locale,
        render_html,
        write_pdf,
    )
    from homeledger.projections.statement.view import build_statement
    from homeledger.projections.verify import verify as run_verify

    _year(year)
    target = _out(out, (".html", ".pdf"))
    try:
        check_locale(locale)
    except StatementLocaleError as exc:
        raise InputError(str(exc)) from None
    projections, ledger = _ledger(ctx, as_of_position, as_of, to)
    start = ledger.terms().start_date.year
    if year < start:
        raise InputError(f"--year: the partnership started in {start}")
    store = ledger.store

    def verifier() -> Any:
        return run_verify(store, projections.db, projections.runner)

    built = build_statement(ledger, year, verifier if verify else None)
    html = render_html(built, locale)
    try:
        _write(target, html, write_pdf)
    except PdfUnavailableError as exc:
        raise InputError(str(exc)) from None
    failed = tuple(c.name for c in built.integrity.checks if not c.ok)
    return StatementWritten(target, year, ledger.cut.position, ledger.cut.head_hash, locale,
                   built.integrity.verified, failed)  # fmt: skip


@click.command("statement")
@click.option("--year", type=int, required=True, help="The pledge year the statement is of.")
@click.option(
    "--to", "to", metavar="DATE", help="Only facts effective on or before DATE (YYYY-MM-DD)."
)
@click.option(
    "--locale",
    default="en",
    show_default=True,
    help="Amounts and dates for people in this locale (en, nl, nb, sv, de, ...).",
)
@click.option(
    "--out",
    required=True,
    metavar="FILE.html|FILE.pdf",
    help="Write the statement here: one self-contained HTML file, or a PDF.",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not run verify (the integrity box then says it was not run).",
)
@as_of_options
@pass_context
def statement(ctx: Context, year: int, to: str | None, locale: str, out: str, no_verify: bool,
              as_of_position: int | None, as_of: str | None) -> None:  # fmt: skip
    """The partnership's yearly statement for people: figures, charts, initiatives,
    milestones and the integrity of what it shows.

    Every figure equals what `balances` and `audit` print for the same cut. Exit 1 (the
    statement is written, and says so) when a verify check fails at the cut.
    """
    written = write_statement(
        ctx,
        year,
        out,
        locale=locale,
        to=_date(to, "--to"),
        verify=not no_verify,
        as_of_position=as_of_position,
        as_of=as_of,
    )
    _done(ctx, written.summary(), written.line())
    if written.verified is False:
        raise Failure(FINDING, f"verify found problems at the cut ({', '.join(written.failed)}); "
                      f"the statement {written.out} says so")  # fmt: skip


def _write(target: Path, html: str, write_pdf: Any) -> None:
    from homeledger.projections.output_file import replaced_on_success

    try:
        with replaced_on_success(target) as temporary:
            if target.suffix.lower() == ".pdf":
                write_pdf(html, temporary)
            else:
                temporary.write_text(html, encoding="utf-8")
    except OutputPathError as exc:
        raise InputError(str(exc)) from None


@click.group("export")
def export() -> None:
    """The ledger in standard formats for others to read."""


_SECTOR = re.compile(r"(?P<programme>.+)=(?P<code>[0-9]+)")


def _sectors(given: tuple[str, ...]) -> dict[str, str]:
    from homeledger.projections.iati.codes import SECTOR_CODE

    found = {}
    for text in given:
        match = _SECTOR.fullmatch(text.strip())
        if match is None or not SECTOR_CODE.fullmatch(match["code"]):
            raise InputError(
                f"--sector: {text[:60]!r} is not PROGRAMME=CODE with a 5-digit "
                "OECD DAC purpose code (e.g. 'youth employability=11330')"
            )
        found[match["programme"].strip()] = match["code"]
    return found


@export.command("iati")
@click.option("--out", required=True, metavar="FILE.xml", help="Write the IATI file here.")
@click.option("--year", type=int, help="Only the money of this pledge year (and the "
              "disbursements paid in it); default: everything.")  # fmt: skip
@click.option(
    "--reporting-org",
    "reporting_org",
    required=True,
    metavar="REF",
    help="The publisher's IATI organisation identifier, e.g. NL-KVK-41202535.",
)
@click.option(
    "--reporting-org-name",
    "reporting_org_name",
    required=True,
    metavar="NAME",
    help="The publisher's name.",
)
@click.option("--reporting-org-type", "reporting_org_type", default="21", show_default=True,
              metavar="CODE", help="The publisher's IATI OrganisationType code "
              "(21: international NGO, 22: national NGO, 60: foundation, ...).")  # fmt: skip
@click.option(
    "--sector",
    "sectors",
    multiple=True,
    metavar="PROGRAMME=CODE",
    help="The OECD DAC 5-digit sector of a programme (repeatable).",
)
@click.option(
    "--no-validate",
    is_flag=True,
    help="Do not check the file against the IATI 2.03 schema before writing it.",
)
@as_of_options
@pass_context
def iati(ctx: Context, out: str, year: int | None, reporting_org: str,
         reporting_org_name: str, reporting_org_type: str, sectors: tuple[str, ...],
         no_validate: bool, as_of_position: int | None, as_of: str | None) -> None:  # fmt: skip
    """The ledger as IATI 2.03 activity XML: the partnership, and an activity per
    initiative with its commitments, disbursements, budgets and results.

    The same ledger gives byte-identical files. Checked against the official schema
    before it is put in place, unless --no-validate.
    """
    from homeledger.projections.iati.codes import ORGANISATION_TYPES
    from homeledger.projections.iati.mapping import ExportInvalidError, ExportOptions, export_iati
    from homeledger.projections.iati.orgid import OrganisationIdError, parse_org_id

    _year(year)
    try:
        parse_org_id(reporting_org)
    except OrganisationIdError as exc:
        raise InputError(str(exc)) from None
    if not reporting_org_name.strip():
        raise InputError("--reporting-org-name: the publisher's name is required")
    if reporting_org_type not in ORGANISATION_TYPES:
        raise InputError(f"--reporting-org-type: {reporting_org_type[:10]!r} is not an IATI "
                         f"OrganisationType code ({', '.join(ORGANISATION_TYPES)})")  # fmt: skip
    options = ExportOptions(reporting_org, reporting_org_name.strip(), reporting_org_type, year,
                            _sectors(sectors), validate=not no_validate)  # fmt: skip
    target = _out(out, (".xml",))
    _, ledger = _ledger(ctx, as_of_position, as_of)
    try:
        written = export_iati(ledger, target, options)
    except OutputPathError as exc:
        raise InputError(str(exc)) from None
    except ExportInvalidError as exc:
        raise Failure(INTERNAL, str(exc)) from None
    _done(ctx, {"out": str(target), "position": ledger.cut.position, "year": year,
                "activities": written.activities, "transactions": written.transactions,
                "validated": not no_validate},
          f"wrote {target}: {written.activities} activities, {written.transactions} "
          f"transactions as of position {ledger.cut.position}"
          f"{'' if no_validate else ', valid against IATI 2.03'}")  # fmt: skip


def register(group: click.Group) -> None:
    """Adds the document commands to the CLI."""
    group.add_command(statement)
    group.add_command(export)
