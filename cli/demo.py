"""`homeledger demo`: the reference case end to end on the embedded defaults.

It runs `projections.end_to_end` in a fresh folder (given, or a new temporary one) and
prints both sides' balances side by side. Exit 1 when anything differs. The server is
stopped in every case, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from homeledger.cli.bootstrap import Services, build_application, open_projection_db
from homeledger.cli.context import Context, pass_context
from homeledger.cli.documents import write_statement
from homeledger.cli.errors import BAD_INPUT, FINDING, Failure, quiet_asyncio
from homeledger.cli.render import emit_object, emit_rows
from homeledger.projections import end_to_end
from homeledger.projections.end_to_end import COUNTRY_FIGURES, YEAR_FIGURES

WIRING = end_to_end.Wiring(application=build_application, projection_db=open_projection_db)
STATEMENT_YEAR = 2022  # the reference case's latest pledge year


def say(line: str) -> None:
    click.echo(f"demo: {line}", err=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that the server is stopped on the way out."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(file_okay=False),
              help="Folder for the demo's stores, NATS server and statement, kept afterwards "
                   "(default: a temporary folder, removed on the way out).")  # fmt: skip
@click.option("--keep", is_flag=True,
              help="Keep the temporary folder (its path is printed).")  # fmt: skip
@pass_context
def demo(ctx: Context, folder: str | None, keep: bool) -> None:
    """The reference case end to end: record, relay to NATS, project, compare.

    Records "A Home for a Home" on a fresh SQLite store, publishes it to a NATS server
    started from the bundled binary, builds a second store from the stream alone, prints
    both sides' balances side by side, and exits 1 if they differ or verify finds a
    problem.
    """
    started = time.monotonic()
    base = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="homeledger-demo-"))
    # Without --dir the statement is written where the user is, the rest is removed.
    statement = (base / f"statement-{STATEMENT_YEAR}.html" if folder
                 else Path.cwd() / f"homeledger-demo-statement-{STATEMENT_YEAR}.html")  # fmt: skip
    try:
        base.mkdir(parents=True, exist_ok=True)
        for name in ("homeledger.db", "consumer.db", "nats", statement.name if folder else ""):
            if name and (base / name).exists():
                raise Failure(BAD_INPUT, f"{base / name} already exists: give an empty --dir")
        with _sigterm_as_interrupt(), quiet_asyncio():
            result = end_to_end.run(ctx.settings, base, say, WIRING)
            result["statement"] = _statement(ctx, base, statement)
    finally:
        if folder is None and not keep:
            shutil.rmtree(base, ignore_errors=True)
        elif folder is None:
            say(f"kept the demo's folder {base}")
    result["seconds"] = round(time.monotonic() - started, 2)
    _print(result, ctx.fmt)
    if not result["equal"] or not result["verified"]:
        raise Failure(FINDING, _failure_line(result))


def _statement(ctx: Context, base: Path, out: Path) -> str:
    """The reference case's statement of its latest pledge year, written to `out`."""
    settings = ctx.settings.model_copy(update={"store": f"sqlite:///{base / 'homeledger.db'}"})
    local = Context(settings=settings, services=Services(settings), fmt=ctx.fmt)
    try:
        written = write_statement(local, STATEMENT_YEAR, str(out))
    finally:
        local.close()
    say(f"wrote the {STATEMENT_YEAR} statement of the reference case to {written.out} "
        "(open it in a browser)")  # fmt: skip
    return str(written.out)


def _failure_line(result: dict[str, Any]) -> str:
    if not result["equal"]:
        return f"store and stream balances differ (by {', '.join(result['differing'])})"
    failed = ", ".join(c["check"] for c in result["checks"] if not c["ok"])
    return f"verify found problems ({failed}); first bad position {result['first_bad_position']}"


def _print(result: dict[str, Any], fmt: str) -> None:
    if fmt != "table":
        emit_object(result, "json" if fmt == "csv" else fmt)
        return
    click.echo(f"Balances per year: the store ({result['store']}) and the consumer built "
               f"from stream {result['stream']} alone ({result['consumer_store']})")  # fmt: skip
    emit_rows(_flat(result["years"], "year", YEAR_FIGURES), ("year", "side", *YEAR_FIGURES),
              "table")  # fmt: skip
    click.echo(f"\nPer country of the {result['initiatives']} initiatives (the store's "
               "figures; 'stream' says whether the consumer's are the same):")  # fmt: skip
    emit_rows([{"country": row["country"], **row["store"],
                "stream": "same" if row["equal"] else "DIFFERENT"}
               for row in result["countries"]],
              ("country", *COUNTRY_FIGURES, "stream"), "table")  # fmt: skip
    click.echo()
    emit_rows([{"check": c["check"], "result": "ok" if c["ok"] else "FAILED",
                "detail": c["detail"]} for c in result["checks"]],
              ("check", "result", "detail"), "table")  # fmt: skip
    verdict = "EQUAL" if result["equal"] else "DIFFERENT"
    click.echo(f"\nstore and stream balances: {verdict} ({len(result['years'])} years, "
               f"{len(result['countries'])} countries, {result['initiatives']} initiatives, "
               f"{result['events']} events) in {result['seconds']}s")  # fmt: skip
    click.echo(f"the {STATEMENT_YEAR} statement: {result['statement']}")


def _flat(rows: list[dict[str, Any]], by: str, figures: tuple[str, ...]) -> list[dict[str, Any]]:
    flat = []
    for row in rows:
        for side in ("store", "stream"):
            flat.append({by: row[by] if side == "store" else "", "side": side,
                         **{f: row[side][f] for f in figures}})  # fmt: skip
    return flat


def register(group: click.Group) -> None:
    group.add_command(demo)
