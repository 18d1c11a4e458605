"""Recording commands: each builds one domain command and records it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from homeledger.adapters.application import BatchError
from homeledger.cli.context import Context, build, pass_context
from homeledger.cli.errors import Failure, InputError, classify, describe_validation
from homeledger.cli.render import emit_envelopes
from homeledger.domain import commands as c
from homeledger.domain.commands import Command, UnknownCommandError, parse_command

command_id_option = click.option(
    "--command-id", help="Idempotency key: a repeat records nothing and answers as the first."
)


def _record(ctx: Context, command: Command) -> None:
    emit_envelopes(ctx.services.application().execute(command), ctx.fmt)


@click.command("init")
@click.option("--donor", required=True, help="The giving company.")
@click.option("--beneficiary", required=True, help="The charity.")
@click.option("--rate", required=True, help="Amount per home per year, e.g. 100.00.")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. EUR.")
@click.option("--basis", required=True, type=click.Choice(["pro-rata", "year-end"]))
@click.option("--start", required=True, help="Start date, YYYY-MM-DD.")
@command_id_option
@pass_context
def init(ctx: Context, /, **options: Any) -> None:
    """Establish the partnership (once per ledger)."""
    _record(ctx, build(c.EstablishPartnership, **options))


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
        _record(ctx, build(cls, **options))

    return run


units.add_command(_units_command("acquire", c.AcquireUnits, "Record homes acquired."))
units.add_command(_units_command("dispose", c.DisposeUnits, "Record homes disposed of."))


@click.command("pledge")
@click.option("--year", required=True, type=int)
@command_id_option
@pass_context
def pledge(ctx: Context, /, **options: Any) -> None:
    """Pledge (or adjust) a year's donation, computed from the portfolio."""
    _record(ctx, build(c.PledgeDonation, **options))


@click.command("receive")
@click.option("--year", required=True, type=int)
@click.option("--amount", required=True, help="e.g. 250000.00")
@click.option("--on", required=True, help="Date received, YYYY-MM-DD.")
@command_id_option
@pass_context
def receive(ctx: Context, /, **options: Any) -> None:
    """Record money received against a year's pledge."""
    _record(ctx, build(c.ReceiveDonation, **options))


@click.group("initiative")
def initiative() -> None:
    """Initiatives the charity funds."""


@initiative.command("register")
@click.argument("id")
@click.option("--name", required=True)
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code.")
@click.option("--programme", required=True)
@command_id_option
@pass_context
def register_initiative(ctx: Context, /, **options: Any) -> None:
    """Register an initiative (ID: 1-64 of a-z, 0-9, '-')."""
    _record(ctx, build(c.RegisterInitiative, **options))


@initiative.command("close")
@click.argument("id")
@click.option("--on", required=True, help="Date closed, YYYY-MM-DD.")
@click.option("--reason")
@command_id_option
@pass_context
def close(ctx: Context, /, **options: Any) -> None:
    """Close an initiative: nothing is allocated to it afterwards."""
    _record(ctx, build(c.CloseInitiative, **options))


@click.command("allocate")
@click.option("--initiative", required=True)
@click.option("--year", required=True, type=int)
@click.option("--amount", required=True)
@click.option("--allocation-id", help="Default: a new UUID.")
@command_id_option
@pass_context
def allocate(ctx: Context, /, **options: Any) -> None:
    """Allocate part of a year's pledge to an initiative."""
    _record(ctx, build(c.AllocateFunds, **options))


@click.command("release")
@click.argument("id", metavar="ALLOCATION-ID")
@click.option("--amount", required=True)
@click.option("--reason", required=True)
@command_id_option
@pass_context
def release(ctx: Context, /, **options: Any) -> None:
    """Release (part of) an allocation back to its year."""
    _record(ctx, build(c.ReleaseAllocation, **options))


@click.command("disburse")
@click.option("--initiative", required=True)
@click.option("--amount", required=True)
@click.option("--on", required=True, help="Date paid, YYYY-MM-DD.")
@command_id_option
@pass_context
def disburse(ctx: Context, /, **options: Any) -> None:
    """Pay allocated money out to an initiative."""
    _record(ctx, build(c.DisburseFunds, **options))


@click.command("milestone")
@click.option("--initiative", required=True)
@click.option("--name", required=True)
@click.option("--on", required=True, help="Date reached, YYYY-MM-DD.")
@click.option("--evidence", help="Reference to the evidence.")
@command_id_option
@pass_context
def milestone(ctx: Context, /, **options: Any) -> None:
    """Record a milestone an initiative reached (once per milestone)."""
    _record(ctx, build(c.RecordMilestone, **options))


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_context
def import_(ctx: Context, file: str) -> None:
    """Record a JSON Lines file of commands, all or nothing."""
    commands = read_commands(file)
    if not commands:
        raise InputError(f"{file}: no commands to import")
    try:
        envelopes = ctx.services.application().execute_batch([cmd for _, cmd in commands])
    except BatchError as failure:
        code, message = classify(failure.error, flags=False)
        raise Failure(code, f"line {commands[failure.index][0]}: {message}") from None
    emit_envelopes(envelopes, ctx.fmt)


def read_commands(file: str) -> list[tuple[int, Command]]:
    """Parse and validate every line before anything is recorded; name the first bad line."""
    stream = click.open_file(file, "rb") if file == "-" else _open(file)
    commands: list[tuple[int, Command]] = []
    with stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            commands.append((number, _parse_line(number, raw)))
    return commands


def _open(file: str) -> Any:
    try:
        return Path(file).open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from None


# Money in files is a fixed-point string: a JSON number is ambiguous (units or cents?).
MONEY_FIELDS = ("amount", "rate")


def _parse_line(number: int, raw: bytes) -> Command:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"line {number}: not valid UTF-8") from None
    try:
        fields = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"line {number}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(fields, dict):
        raise InputError(f"line {number}: a command must be a JSON object")
    for key in MONEY_FIELDS:
        if key in fields and not isinstance(fields[key], str):
            raise InputError(
                f'line {number}: {key} must be a decimal string such as "250000.00", '
                "not a JSON number"
            )
    try:
        return parse_command(fields)
    except UnknownCommandError as exc:
        raise InputError(f"line {number}: {exc}") from None
    except ValidationError as exc:
        raise InputError(f"line {number}: {describe_validation(exc, flags=False)}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


@click.command("seal")
@pass_context
def seal(ctx: Context) -> None:
    """Record a LedgerSealed fact: a digest of everything stored up to now."""
    emit_envelopes(ctx.services.application().seal(), ctx.fmt)


def register(group: click.Group) -> None:
    for command in (init, units, pledge, receive, initiative, allocate, release, disburse,
                    milestone, import_, seal):  # fmt: skip
        group.add_command(command)

