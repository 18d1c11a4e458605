"""Auditing: balances, audit, portfolio, trial-balance, replay, verify, report.

Every read first brings the stored projections up to the store's head, so it never
shows stale figures, and takes `--as-of-position N` or `--as-of TIME` (recorded
time: the longest prefix of the ledger recorded at or before TIME); `balances`,
`audit` and `report` also take `--to DATE` (the facts effective on or before it).
An answer from such a cut says where it stands: a line on stderr, and in json a field
of every row (`as_of_position`, and `to`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from homeledger.adapters.errors import StoreUnavailableError
from homeledger.adapters.store import LedgerStore
from homeledger.cli.bootstrap import Projections, seal_public_keys
from homeledger.cli.context import Context, pass_context
from homeledger.cli.errors import FINDING, Failure, InputError, positions, quiet_asyncio
from homeledger.cli.inspect import parse_date, parse_time
from homeledger.cli.progress import Progress
from homeledger.cli.render import csv_rows, emit_object, emit_rows, say_empty, table
from homeledger.domain.values import MAX_DATE, MIN_DATE
from homeledger.projections.audit_trail import AUDIT_COLUMNS
from homeledger.projections.balances import BY_CHOICES, columns_for
from homeledger.projections.double_entry import TRIAL_COLUMNS
from homeledger.projections.portfolio import PORTFOLIO_COLUMNS
from homeledger.projections.read_models import PROJECTIONS
from homeledger.projections.report import REPORT_COLUMNS, report_lines, year_report

YEARS = click.IntRange(MIN_DATE.year, MAX_DATE.year)  # the years a ledger can hold
AUDIT_TABLE_COLUMNS = ("position", "recorded_at", "effective_date", "type", "actor",
                       "allocation_id", "year", "change", "balance", "detail")  # fmt: skip


def current(ctx: Context) -> Projections:
    """The read models (of the store, or of a consumer store), caught up with every fact
    recorded so far."""
    projections = ctx.services.projections(consumer_ok=True)
    projections.runner.bring_up_to_date()
    return projections


# Point in time.


def as_of_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--as-of", "as_of", metavar="TIME",
        help="As recorded by this time (ISO 8601; UTC if no zone): the longest prefix of "
        "the ledger whose facts were all recorded at or before it.",
    )(func)  # fmt: skip
    return click.option(
        "--as-of-position", type=positions(), metavar="N",
        help="As of position N: the facts at positions 1..N.",
    )(func)


def to_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--to", "to", metavar="DATE",
        help="Only the facts effective on or before DATE (a reversal counts where the fact "
        "it reverses does); with --as-of, what the ledger knew then about that date.",
    )(func)  # fmt: skip


def resolve(projections: Projections, as_of_position: int | None, as_of: str | None) -> int:
    if as_of_position is not None and as_of is not None:
        raise InputError("give --as-of-position or --as-of, not both")
    moment = parse_time(as_of, "--as-of") if as_of is not None else None
    return projections.reader.resolve(as_of_position, moment)


@dataclass(frozen=True)
class Cut:
    """Where a read answers from: as of a position, and perhaps only the facts effective
    on or before a date. `asked` when the operator chose either; `note` is what the
    answer says of it on stderr, once it is ready (so that a failure is still one line);
    `empty` when it is as of before the first fact (the note is then the whole answer)."""

    position: int
    to: date | None = None
    asked: bool = False
    note: str | None = None
    empty: bool = False

    def fields(self) -> dict[str, Any]:
        """What a json row says of the cut it was read at."""
        if not self.asked:
            return {}
        return {"as_of_position": self.position,
                **({"to": self.to.isoformat()} if self.to else {})}  # fmt: skip

    def say(self) -> None:
        if self.note:
            click.echo(self.note, err=True)


def cut_of(projections: Projections, as_of_position: int | None, as_of: str | None,
           to: str | None = None) -> Cut:  # fmt: skip
    """The cut a read answers from, and what it will say of it."""
    day = parse_date(to, "--to") if to is not None else None
    position = resolve(projections, as_of_position, as_of)
    asked = as_of_position is not None or as_of is not None or day is not None
    if not asked:
        return Cut(position)
    reader = projections.reader
    if position == 0:
        which = f"as of {as_of}" if as_of is not None else "as of position 0"
        first = reader.first_recorded()
        why = (f"the first fact was recorded at {first}" if first else
               "the ledger holds no facts")  # fmt: skip
        return Cut(0, day, True, f"{which}: nothing was recorded yet ({why})", empty=True)
    effective = f"; facts effective on or before {day.isoformat()}" if day else ""
    note = f"as of position {position} (recorded by {reader.known_by(position)}){effective}"
    return Cut(position, day, True, note)


def emit_cut_rows(ctx: Context, cut: Cut, rows: Callable[[Cut], list[dict[str, Any]]],
                  columns: Sequence[str], empty: str,
                  total: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
                  ) -> None:  # fmt: skip
    """Rows read at a cut; json rows name the cut. Nothing before the first fact: a table
    is not printed (the one line says so), json is an empty array. No rows otherwise: a
    table is `empty`, one line on stderr saying why. `total` adds a last line to the
    table only (a script reading csv or json never mistakes it for a row)."""
    extra = cut.fields() if ctx.fmt in ("json", "jsonl") else {}
    found = [] if cut.empty else [{**row, **extra} for row in rows(cut)]
    cut.say()
    if cut.empty and ctx.fmt == "table":
        return
    if found and total is not None and ctx.fmt == "table":
        found = [*found, total(found)]
    emit_rows(found, columns, ctx.fmt, None if cut.empty else f"{empty}{_at(cut)}")


def _at(cut: Cut) -> str:
    return f" (as of position {cut.position})" if cut.asked else ""


# Reads.


@click.command("balances")
@click.option("--year", type=YEARS, help="Only this year's money.")
@click.option("--by", "by", type=click.Choice(BY_CHOICES), default="year", show_default=True,
              help="Group by pledge year, initiative or the initiative's country.")  # fmt: skip
@as_of_options
@to_option
@pass_context
def balances(ctx: Context, year: int | None, by: str, as_of_position: int | None,
             as_of: str | None, to: str | None) -> None:  # fmt: skip
    """Pledged, received, outstanding, allocated, released, unallocated, disbursed."""
    projections = current(ctx)
    cut = cut_of(projections, as_of_position, as_of, to)

    def rows(at: Cut) -> list[dict[str, Any]]:
        return projections.reader.balances(at.position, at.to).rows(by, year)

    what = f"for {year}" if year is not None else "yet"
    emit_cut_rows(ctx, cut, rows, columns_for(by, year), f"no money recorded {what}: no rows")


@click.command("audit")
@click.argument("initiative", help="The initiative's id.")
@as_of_options
@to_option
@pass_context
def audit(ctx: Context, initiative: str, as_of_position: int | None, as_of: str | None,
          to: str | None) -> None:  # fmt: skip
    """Every fact that touched INITIATIVE, with the running balance after each.

    With --format csv or json this is the auditor's file: one row per fact, with the
    columns documented in docs/auditing.md. A reversal is a line of its own naming the
    position of the line it reverses.
    """
    projections = current(ctx)
    cut = cut_of(projections, as_of_position, as_of, to)

    def rows(at: Cut) -> list[dict[str, Any]]:
        return projections.reader.audit_rows(initiative, at.position, at.to)

    columns = AUDIT_TABLE_COLUMNS if ctx.fmt == "table" else AUDIT_COLUMNS
    emit_cut_rows(ctx, cut, rows, columns, f"no fact of {initiative} matches: no rows")


@click.command("portfolio")
@click.option("--on", "on", metavar="DATE", help="Effective date (default: today, UTC).")
@as_of_options
@pass_context
def portfolio(ctx: Context, on: str | None, as_of_position: int | None,
              as_of: str | None) -> None:  # fmt: skip
    """Homes held per country on a date (the table ends with their total)."""
    day = parse_date(on, "--on") if on else datetime.now(UTC).date()
    projections = current(ctx)
    cut = cut_of(projections, as_of_position, as_of)

    def rows(at: Cut) -> list[dict[str, Any]]:
        return projections.reader.portfolio(at.position, day)

    def total(found: list[dict[str, Any]]) -> dict[str, Any]:
        return {"on": day.isoformat(), "country": "total", "units": sum(r["units"] for r in found)}

    emit_cut_rows(ctx, cut, rows, PORTFOLIO_COLUMNS, f"no homes held on {day.isoformat()}",
                  total)  # fmt: skip


@click.command("trial-balance")
@as_of_options
@pass_context
def trial_balance(ctx: Context, as_of_position: int | None, as_of: str | None) -> None:
    """Debits, credits and balance per account; the difference is always zero.

    The table ends with a total line. csv has one row per account and no total (a script
    would read it as an account): the totals are the debit, credit and difference fields
    of the json.
    """
    projections = current(ctx)
    cut = cut_of(projections, as_of_position, as_of)
    trial = projections.reader.trial_balance(cut.position).to_dict()
    cut.say()
    if ctx.fmt in ("json", "jsonl"):
        emit_object(trial, ctx.fmt)
        return
    if cut.empty and ctx.fmt == "table":
        return
    total = {"account": "total", "debit": trial["debit"], "credit": trial["credit"],
             "balance": trial["difference"]}  # fmt: skip
    totals = [total] if ctx.fmt == "table" and trial["accounts"] else []
    emit_rows([*trial["accounts"], *totals], TRIAL_COLUMNS, ctx.fmt,
              f"no postings yet{_at(cut)}: no accounts")  # fmt: skip


@click.command("report")
@click.option("--year", type=YEARS, required=True, help="The pledge year.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to FILE instead of standard output.")  # fmt: skip
@as_of_options
@to_option
@pass_context
def report(ctx: Context, year: int, out: str | None, as_of_position: int | None,
           as_of: str | None, to: str | None) -> None:  # fmt: skip
    """A year's report: pledged, received, allocations, disbursed, milestones."""
    projections = current(ctx)
    cut = cut_of(projections, as_of_position, as_of, to)
    data = year_report(projections.reader, year, cut.position, cut.to)
    text = render_report(data, ctx.fmt)
    nothing = not cut.empty and _nothing_in(data)
    if out is None:
        cut.say()
        if nothing and ctx.fmt == "table":
            say_empty(f"no pledge, allocation, disbursement or milestone recorded for {year}"
                      f"{_at(cut)}: nothing to report")  # fmt: skip
        if not ((cut.empty or nothing) and ctx.fmt == "table"):
            click.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from None
    cut.say()
    click.echo(f"wrote {out}", err=True)


def _nothing_in(data: dict[str, Any]) -> bool:
    return not (data["pledge"] or data["allocations"] or data["disbursements"]
                or data["milestones"])  # fmt: skip


def render_report(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "jsonl":
        return json.dumps(data, separators=(",", ":")) + "\n"
    lines = report_lines(data)
    if fmt == "table":
        return table(lines, REPORT_COLUMNS) + "\n"
    return "".join(csv_rows(lines, REPORT_COLUMNS))


# Maintenance.


@click.command("replay")
@click.option("--projection", "names", multiple=True, type=click.Choice(PROJECTIONS),
              help="Rebuild only this projection (repeatable; default: all).")  # fmt: skip
@click.option("--page-size", type=click.IntRange(1, 1_000_000), help="Facts per transaction.")
@pass_context
def replay(ctx: Context, names: tuple[str, ...], page_size: int | None) -> None:
    """Drop projections and rebuild them from position 0.

    From 20,000 facts on, a second process rebuilds about half of the projections while
    this one rebuilds the rest (each page of facts is one transaction in either).
    """
    projections = ctx.services.projections(page=page_size)
    chosen = names or PROJECTIONS
    total = projections.source.max_position()
    started = time.monotonic()
    from homeledger.cli.beside import ProcessBeside

    # Two cores: about half of the projections rebuilt in a second process.
    beside = ProcessBeside(ctx.settings) if _two_processes(ctx, total) else None
    with Progress("replaying", total) as bar:
        count = projections.runner.rebuild(chosen, progress=bar.advance, beside=beside)
    seconds = time.monotonic() - started
    summary = {
        "projections": list(chosen),
        "events": count,
        "position": total,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds) if seconds else 0,
    }
    emit_object(summary, ctx.fmt)


@click.command("verify")
@click.option("--against-nats", is_flag=True,
              help="Also check the published stream (--nats, --stream): every stored event "
                   "once, in order, identical; nothing beyond the store's head; the same "
                   "balances built from the stream.")  # fmt: skip
@pass_context
def verify(ctx: Context, against_nats: bool) -> None:
    """Check the hash chain, seals, rules, receipts, snapshots, projections, double entry.

    Exit 1 when any check finds a problem, naming the first bad position; with
    --against-nats exit 4 when the stream cannot be read. From 20,000 facts on, a second
    process runs the ledger's checks (chain, seals, rules, snapshots) while this one
    checks the receipts and the read models. Ends with a one-line summary
    on stderr (and shows its progress there on a terminal).
    """
    from homeledger.cli.beside import ProcessLedgerChecks, start_witness
    from homeledger.projections.verify import verify as run_verify

    started = time.monotonic()
    projections = ctx.services.projections()
    store = ctx.services.store()
    _check_readable(store)
    head = store.max_position()
    beside = ProcessLedgerChecks(ctx.settings) if _two_processes(ctx, head) else None
    # With the checks in two processes, the stream is read in a third meanwhile.
    stream = start_witness(ctx.settings, head) if against_nats and beside is not None else None
    try:
        with Progress("verifying", head) as bar:
            result = run_verify(counting(store, bar), projections.db, projections.runner,
                                seal_public_keys(ctx.settings), beside, head)  # fmt: skip
        if stream is not None:
            from homeledger.projections.witness import settle

            result.checks += settle(stream.wait(), store, projections.db, result.replayed)
    finally:
        if stream is not None:
            stream.stop()  # done already, or this process failed
    if against_nats and stream is None:
        import asyncio

        from homeledger.projections.witness import verify_against_stream

        with quiet_asyncio(), Progress("checking the stream", result.head) as bar:
            witness = counting(store, bar)
            result.checks += asyncio.run(
                verify_against_stream(ctx.settings, witness, projections.db, result.head,
                                      result.replayed)
            )
    if ctx.fmt in ("json", "jsonl"):
        emit_object(result.to_dict(), ctx.fmt)
    else:
        rows = [{"check": c.name, "result": "ok" if c.ok else "FAILED",
                 "first_bad_position": c.position, "detail": c.detail()}
                for c in result.checks]  # fmt: skip
        emit_rows(rows, ("check", "result", "first_bad_position", "detail"), ctx.fmt)
    if not result.ok:
        where = result.first_bad_position
        at = f"; first bad position {where}" if where is not None else ""
        failed = ", ".join(c.name for c in result.checks if not c.ok)
        raise Failure(FINDING, f"verify found problems ({failed}){at}")
    click.echo(f"verify: {result.head:,} events, {len(result.checks)} checks"
               f"{' (with the stream)' if against_nats else ''}, all passed in "
               f"{time.monotonic() - started:.1f}s", err=True)  # fmt: skip


def _two_processes(ctx: Context, facts: int) -> bool:
    """Whether `replay` and `verify` share their work with a second process: when there
    are enough facts for it to pay, on a store another process can open."""
    from homeledger.adapters.settings import store_location
    from homeledger.cli.beside import BESIDE_FROM

    return facts >= BESIDE_FROM and not store_location(ctx.settings.store).in_memory


def counting(store: LedgerStore, bar: Progress) -> Any:
    """`store`, whose full reads (every stored fact, in order) advance `bar`."""
    return _Counting(store, bar)


class _Counting:
    def __init__(self, store: LedgerStore, bar: Progress) -> None:
        self._store, self._bar = store, bar

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def notifications(self, start: int = 1, stop: int | None = None,
                      types: Sequence[str] = (), *args: Any,
                      **kwargs: Any) -> Iterator[Any]:  # fmt: skip
        for item in self._store.notifications(start, stop, types, *args, **kwargs):
            if not types:
                self._bar.advance(1)
            yield item


def _check_readable(store: LedgerStore) -> None:
    """Exit 4, not a wall of findings, when neither the first nor the newest stored fact
    can be read: the cipher key is missing or wrong (a tampered fact is one among many)."""
    head = store.max_position()
    first = next(iter(store.notifications(1, head, page=1)), None)
    last = next(iter(store.notifications(head, head)), None) if head else None
    ends = [n for n in (first, last) if n is not None]
    failures: list[StoreUnavailableError] = []
    for notification in ends:
        try:
            store.decode_body(notification)
        except StoreUnavailableError as exc:
            failures.append(exc)
    if ends and len(failures) == len(ends):
        raise failures[0]


def register(group: click.Group) -> None:
    """Adds the auditing commands to the CLI."""
    for command in (balances, audit, portfolio, trial_balance, replay, verify, report):
        group.add_command(command)

