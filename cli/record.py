"""Recording commands: each builds one domain command and records it.

Every one takes `--command-id` and `--dry-run` (decided against the current ledger,
printed, exit code as the real command's, nothing written); those whose facts have no
date of their own take `--on DATE`, the effective date (default: today, UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import click

from homeledger.adapters.application import BatchError, Recorded
from homeledger.adapters.envelope import Envelope
from homeledger.cli.context import Context, build, pass_context
from homeledger.cli.errors import Failure, classify
from homeledger.cli.help import IMPORT_FORMAT
from homeledger.cli.import_file import checked
from homeledger.cli.progress import Progress
from homeledger.cli.render import EventPrinter, emit_envelopes
from homeledger.domain import commands as c
from homeledger.domain.commands import Command

Numbered = tuple[int, Command]  # a command and its line number

_command_id = click.option(
    "--command-id", help="Idempotency key: a repeat records nothing and answers as the first."
)
_dry_run = click.option(
    "--dry-run", is_flag=True,
    help="Decide against the current ledger and print what would be recorded; write nothing.",
)  # fmt: skip
on_option = click.option(
    "--on", help="Effective date, YYYY-MM-DD (default: today, UTC); not before the "
    "partnership's start, not after today.",
)  # fmt: skip


def command_id_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--command-id and --dry-run: what every recording command takes."""
    return _command_id(_dry_run(func))


def _record(ctx: Context, cls: type[Command], options: dict[str, Any]) -> None:
    dry_run = bool(options.pop("dry_run", False))
    command = build(cls, **options)
    emit_envelopes(ctx.services.application().execute(command, dry_run=dry_run), ctx.fmt)
    if dry_run:
        click.echo("dry run: nothing was recorded", err=True)


@click.command("init")
@click.option("--donor", required=True, help="The giving company.")
@click.option("--beneficiary", required=True, help="The charity.")
@click.option("--rate", required=True, help="Amount per home per year, e.g. 100.00.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. EUR.")
@click.option("--basis", required=True, type=click.Choice(["pro-rata", "year-end"]),
              help="pro-rata: each home counts for the days held; year-end: the homes held "
                   "on 31 December.")
@click.option("--start", required=True, help="Start date, YYYY-MM-DD.")
@command_id_option
@pass_context
def init(ctx: Context, /, **options: Any) -> None:
    """Establish the partnership (once per ledger)."""
    _record(ctx, c.EstablishPartnership, options)


@click.group("units")
def units() -> None:
    """Homes acquired and disposed of."""


def _units_command(name: str, cls: type[c.AcquireUnits], doc: str) -> click.Command:
    @click.command(name, help=doc)
    @click.option("--country", required=True, help="ISO 3166-1 alpha-2 code.")
    @click.option("--units", required=True, type=int, help="Number of homes (> 0).")
    @click.option("--on", required=True, help="Effective date, YYYY-MM-DD.")
    @click.option("--ref", help="Reference, e.g. a deed or portfolio id.")
    @command_id_option
    @pass_context
    def run(ctx: Context, /, **options: Any) -> None:
        _record(ctx, cls, options)

    return run


units.add_command(_units_command("acquire", c.AcquireUnits, "Record homes acquired."))
units.add_command(_units_command("dispose", c.DisposeUnits, "Record homes disposed of."))


@click.command("pledge")
@click.option("--year", required=True, type=int, help="The year pledged for.")
@on_option
@command_id_option
@pass_context
def pledge(ctx: Context, /, **options: Any) -> None:
    """Pledge (or adjust) a year's donation, computed from the portfolio."""
    _record(ctx, c.PledgeDonation, options)


@click.command("receive")
@click.option("--year", required=True, type=int, help="The pledge year the money is for.")
@click.option("--amount", required=True, help="Amount received, e.g. 250000.00.")
@click.option("--on", required=True, help="Date received, YYYY-MM-DD.")
@command_id_option
@pass_context
def receive(ctx: Context, /, **options: Any) -> None:
    """Record money received against a year's pledge."""
    _record(ctx, c.ReceiveDonation, options)


@click.group("initiative")
def initiative() -> None:
    """Initiatives the charity funds."""


@initiative.command("register")
@click.argument("id", help="The initiative's id: 1-64 of a-z, 0-9 and '-'.")
@click.option("--name", required=True, help="The initiative's name.")
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code.")
@click.option("--programme", required=True, help="The programme it belongs to.")
@on_option
@command_id_option
@pass_context
def register_initiative(ctx: Context, /, **options: Any) -> None:
    """Register an initiative (ID: 1-64 of a-z, 0-9, '-')."""
    _record(ctx, c.RegisterInitiative, options)


@initiative.command("close")
@click.argument("id", help="The initiative's id.")
@click.option("--on", required=True, help="Date closed, YYYY-MM-DD.")
@click.option("--reason", help="Why it closes.")
@command_id_option
@pass_context
def close(ctx: Context, /, **options: Any) -> None:
    """Close an initiative: nothing is allocated to it afterwards."""
    _record(ctx, c.CloseInitiative, options)


@click.command("allocate")
@click.option("--initiative", required=True, help="The initiative's id.")
@click.option("--year", required=True, type=int, help="The pledge year the money comes from.")
@click.option("--amount", required=True, help="Amount to allocate, e.g. 250000.00.")
@click.option("--allocation-id", help="Default: a new UUID.")
@on_option
@command_id_option
@pass_context
def allocate(ctx: Context, /, **options: Any) -> None:
    """Allocate part of a year's pledge to an initiative."""
    _record(ctx, c.AllocateFunds, options)


@click.command("release")
@click.argument("id", metavar="ALLOCATION-ID", help="The allocation to release from.")
@click.option("--amount", required=True, help="Amount released, e.g. 50000.00.")
@click.option("--reason", required=True, help="Why the money goes back to its year.")
@on_option
@command_id_option
@pass_context
def release(ctx: Context, /, **options: Any) -> None:
    """Release (part of) an allocation back to its year."""
    _record(ctx, c.ReleaseAllocation, options)


@click.command("disburse")
@click.option("--initiative", required=True, help="The initiative paid.")
@click.option("--amount", required=True, help="Amount paid, e.g. 120000.00.")
@click.option("--on", required=True, help="Date paid, YYYY-MM-DD.")
@command_id_option
@pass_context
def disburse(ctx: Context, /, **options: Any) -> None:
    """Pay allocated money out to an initiative."""
    _record(ctx, c.DisburseFunds, options)


@click.command("milestone")
@click.option("--initiative", required=True, help="The initiative that reached it.")
@click.option("--name", required=True, help="The milestone's name.")
@click.option("--on", required=True, help="Date reached, YYYY-MM-DD.")
@click.option("--evidence", help="Reference to the evidence.")
@command_id_option
@pass_context
def milestone(ctx: Context, /, **options: Any) -> None:
    """Record a milestone an initiative reached (once per milestone)."""
    _record(ctx, c.RecordMilestone, options)


@click.command("reverse")
@click.argument("id", metavar="POSITION|EVENT-ID",
          help="The fact to reverse: its store position or its event id.")
@click.option("--reason", required=True, help="Why the fact is taken back.")
@on_option
@command_id_option
@pass_context
def reverse(ctx: Context, /, **options: Any) -> None:
    """Reverse a recorded fact: an acquisition, a disposal, a receipt, a disbursement or
    a milestone. The fact stands in the history; its effect leaves every figure."""
    _record(ctx, c.ReverseFact, options)


@click.command("import", epilog=IMPORT_FORMAT)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True),
          help="A JSON Lines file of commands (see below); - reads standard input.")
@click.option("--dry-run", is_flag=True,
              help="Check the whole file against the ledger and record nothing.")  # fmt: skip
@pass_context
def import_(ctx: Context, file: str, dry_run: bool) -> None:
    """Record a JSON Lines file of commands (- reads standard input), all or nothing.

    Prints a one-line summary; with --format json or jsonl the envelopes instead. On a
    terminal, shows its progress on stderr.
    """
    app = ctx.services.application()
    printer = EventPrinter(ctx.fmt) if dry_run and ctx.fmt in ("json", "jsonl") else None
    with checked(file) as commands:
        if printer is not None:
            printer.start()
        try:
            with Progress("checking" if dry_run else "importing", commands.count,
                          unit="commands") as bar:  # fmt: skip
                result = app.record_all(_counted(commands.commands(), bar), dry_run=dry_run,
                                        on_decided=_print_each(printer))  # fmt: skip
        except BatchError as failure:
            code, message = classify(failure.error, flags=False)
            raise Failure(code, f"line {failure.index}: {message}") from None
    if ctx.fmt not in ("json", "jsonl"):
        click.echo(_summary(result, dry_run))
        return
    if printer is None:  # recorded: read back what the import recorded or answered
        printer = EventPrinter(ctx.fmt)
        printer.start()
        for envelope in app.store.envelopes_of(result.segments):
            printer.event(envelope)
    printer.finish()


def _counted(commands: Iterator[Numbered], bar: Progress) -> Iterator[Numbered]:
    """The file's commands, each counted by `bar` as the application takes it."""
    for numbered in commands:
        yield numbered
        bar.advance(1)


def _print_each(printer: EventPrinter | None) -> Callable[[list[Envelope]], None] | None:
    if printer is None:
        return None

    def show(envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            printer.event(envelope)
        printer.flush()

    return show


def _summary(result: Recorded, dry_run: bool) -> str:
    where = result.positions
    at = f" at positions {where[0]}..{where[1]}" if where else ""
    repeats = f"; {result.repeats} recorded before, answered as then" if result.repeats else ""
    if dry_run:
        return (f"dry run: {result.commands} commands would record {result.events} events"
                f"{at}{repeats}; nothing was recorded")  # fmt: skip
    return f"imported {result.commands} commands: {result.events} events recorded{at}{repeats}"


@click.command("seal")
@pass_context
def seal(ctx: Context) -> None:
    """Record a LedgerSealed fact: a digest of everything stored up to now."""
    emit_envelopes(ctx.services.application().seal(), ctx.fmt)


def register(group: click.Group) -> None:
    for command in (init, units, pledge, receive, initiative, allocate, release, disburse,
                    milestone, reverse, import_, seal):  # fmt: skip
        group.add_command(command)

