"""`homeledger demo`: the reference case end to end on the embedded defaults."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from adapters.bootstrap import build_application
from adapters.chain import check_link, links
from adapters.envelope import GENESIS_HASH
from cli import reference_case
from cli.context import Context, pass_context
from cli.errors import Failure
from cli.render import emit_rows
from domain.money import fmt

YEAR_COLUMNS = ("year", "pledged", "received", "outstanding", "allocated", "released",
                "unallocated")  # fmt: skip


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(file_okay=False),
              help="Folder for the demo's store (default: a new temporary folder).")  # fmt: skip
@pass_context
def demo(ctx: Context, folder: str | None) -> None:
    """Record the reference case ("A Home for a Home") on a fresh SQLite store."""
    base = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="homeledger-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    store_path = base / "homeledger.db"
    if store_path.exists():
        raise Failure(2, f"{store_path} already exists: give an empty --dir")
    settings = ctx.settings.model_copy(
        update={"store": f"sqlite:///{store_path}", "actor": ctx.settings.actor or "demo"}
    )
    app = build_application(settings)
    try:
        recorded = 0
        for command in reference_case.commands():
            recorded += len(app.execute(command))
        click.echo(f"recorded {recorded} facts of the reference case in {store_path}", err=True)
        broken = _first_break(app)
        if broken:
            raise Failure(1, f"hash chain broken at position {broken}")
        rows = _year_rows(app)
        emit_rows(rows, YEAR_COLUMNS, ctx.fmt)
    finally:
        app.store.close()


def _first_break(app: Any) -> int | None:
    prev, version = GENESIS_HASH, 1
    for link in links(app.store):
        topic = "homeledger:" + str(link.body.get("type"))
        if check_link(link, version, prev, topic):
            return link.position
        prev, version = str(link.body["hash"]), version + 1
    return None


def _year_rows(app: Any) -> list[dict[str, Any]]:
    ledger = app.head().ledger
    return [
        {
            "year": year,
            "pledged": fmt(book.pledged),
            "received": fmt(book.received),
            "outstanding": fmt(book.pledged - book.received),
            "allocated": fmt(book.allocated),
            "released": fmt(book.released),
            "unallocated": fmt(book.unallocated),
        }
        for year, book in sorted(ledger.years.items())
    ]


def register(group: click.Group) -> None:
    group.add_command(demo)
