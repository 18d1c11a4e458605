"""The one place that prints: table (aligned, money right-aligned), json, jsonl, csv."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from homeledger.adapters.hash_chain import ENVELOPE_FIELDS

if TYPE_CHECKING:
    from homeledger.adapters.envelope import Envelope

FORMATS = ("table", "json", "jsonl", "csv")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# A spreadsheet reads a cell that starts with one of these as a formula
# (=HYPERLINK(...), @SUM(...), +cmd|...): a CSV cell holding recorded text is written
# with a leading apostrophe instead, as spreadsheet-safe exporters do. A plain number
# ("-5000.00") is left as it is: it cannot be a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def csv_safe(value: Any) -> str:
    """A value as a CSV cell that no spreadsheet runs as a formula."""
    text = _cell(value)
    formula = text.startswith(_FORMULA_START) or text.lstrip(" ").startswith(_FORMULA_START)
    return "'" + text if formula and not _PLAIN_NUMBER.fullmatch(text) else text


def csv_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """The header, then each row, as CSV lines (spreadsheet-safe cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    lines: Iterator[Sequence[Any]] = (
        [row.get(column) for column in columns] for row in rows
    )
    for values in itertools.chain([columns], lines):
        out.seek(0)
        out.truncate()
        writer.writerow([csv_safe(v) for v in values])
        yield out.getvalue()


def _is_number(text: str) -> bool:
    stripped = text.lstrip("-")
    return bool(stripped) and stripped.replace(".", "", 1).isdigit()


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned columns; numbers (money, counts, positions) right-aligned."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    numeric = [
        bool(cells) and all(_is_number(r[i]) or not r[i] for r in cells)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    header = [c.upper().replace("_", " ") for c in columns]
    return "\n".join([line(header), *(line(r) for r in cells)])


def emit_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    """Print rows of plain values in the chosen format (streams for json/jsonl/csv)."""
    if fmt == "table":
        click.echo(table(list(rows), columns))
    elif fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, separators=(",", ":")))
    elif fmt == "csv":
        for line in csv_rows(rows, columns):
            click.echo(line, nl=False)
    else:
        _emit_json_array(rows)


def _emit_json_array(items: Iterable[dict[str, Any]]) -> None:
    click.echo("[", nl=False)
    for index, item in enumerate(items):
        click.echo(("," if index else "") + json.dumps(item, separators=(",", ":")), nl=False)
    click.echo("]")


# Envelopes: the JSON forms are the published envelope; table and csv flatten it.

EVENT_COLUMNS = ("position", "recorded_at", "effective_date", "type", "scope", "amount",
                 "detail", "actor")  # fmt: skip


def summary(envelope: Envelope) -> dict[str, Any]:
    from homeledger.adapters.envelope import format_time

    data = envelope.data
    details: dict[str, Callable[[], str]] = {
        "PartnershipEstablished": lambda: f"{data['donor']} -> {data['beneficiary']}, "
        f"{data['rate']} {data['currency']}/home, {data['basis']}",
        "UnitsAcquired": lambda: f"+{data['units']} homes",
        "UnitsDisposed": lambda: f"-{data['units']} homes",
        "DonationPledged": lambda: f"delta {data['delta']}, basis {data['unit_basis']}",
        "DonationReceived": lambda: f"received {data['received_on']}",
        "InitiativeRegistered": lambda: f"{data['name']} ({data['country']})",
        "FundsAllocated": lambda: f"{data['year']} allocation {data['allocation_id']}",
        "AllocationReleased": lambda: f"{data['allocation_id']}: {data['reason']}",
        "FundsDisbursed": lambda: f"disbursed {data['disbursed_on']}",
        "MilestoneReached": lambda: data["milestone"],
        "InitiativeClosed": lambda: data.get("reason", ""),
        "LedgerSealed": lambda: f"up to {data['position']}: {data['digest'][:16]}",
        "FactReversed": lambda: f"reverses {data['reversed_type']} at "
        f"{data['reversed_position']}" + (f" ({data['original']['amount']})"
                                          if "amount" in data["original"] else "")
        + f": {data['reason']}",
    }
    detail = details[envelope.type]()
    return {
        "position": envelope.position,
        "recorded_at": format_time(envelope.recorded_at),
        "effective_date": envelope.effective_date.isoformat(),
        "type": envelope.type,
        "scope": envelope.scope,
        "amount": data.get("amount"),
        "detail": detail,
        "actor": envelope.actor,
    }


def emit_envelopes(envelopes: Iterable[Envelope], fmt: str) -> None:
    """A finished list of events: table (aligned to its widest cells), json, jsonl, csv."""
    if fmt == "table":
        emit_rows((summary(e) for e in envelopes), EVENT_COLUMNS, fmt)
    else:
        emit_rows((e.to_dict() for e in envelopes), ENVELOPE_FIELDS, fmt)


class EventPrinter:
    """Prints events one by one as they arrive (tail, subscribe), in the chosen format:
    a table of fixed columns (its header once), json as one array, jsonl, csv."""

    TABLE = "{position:>9}  {recorded_at:<27}  {type:<22}  {scope:<20}  {amount:>14}  {detail}"

    def __init__(self, fmt: str, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out
        self.count = 0

    def _echo(self, text: str, nl: bool = True) -> None:
        click.echo(text, nl=nl, file=self.out)

    def start(self) -> None:
        if self.fmt == "table":
            self._echo(self.TABLE.format(position="POSITION", recorded_at="RECORDED AT",
                                         type="TYPE", scope="SCOPE", amount="AMOUNT",
                                         detail="DETAIL").rstrip())  # fmt: skip
        elif self.fmt == "csv":
            self._echo(",".join(ENVELOPE_FIELDS))
        elif self.fmt == "json":
            self._echo("[", nl=False)

    def event(self, envelope: Envelope) -> None:
        if self.fmt == "table":
            row = {k: ("" if v is None else v) for k, v in summary(envelope).items()}
            self._echo(self.TABLE.format(**row).rstrip())
        elif self.fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="")
            writer.writerow([csv_safe(v) for v in envelope.to_dict().values()])
            self._echo(buffer.getvalue())
        else:
            text = json.dumps(envelope.to_dict(), separators=(",", ":"))
            if self.fmt == "json":
                self._echo(("," if self.count else "") + text, nl=False)
            else:
                self._echo(text)
        self.count += 1

    def finish(self) -> None:
        if self.fmt == "json":
            self._echo("]")


def emit_object(obj: dict[str, Any], fmt: str) -> None:
    """One record: json prints the object itself; table prints key/value lines."""
    if fmt == "json":
        click.echo(json.dumps(obj, indent=2))
    elif fmt == "jsonl":
        click.echo(json.dumps(obj, separators=(",", ":")))
    elif fmt == "csv":
        emit_rows([obj], list(obj), fmt)
    else:
        flat = _flatten(obj)
        width = max(len(k) for k in flat)
        for key, value in flat.items():
            click.echo(f"{key.ljust(width)}  {_cell(value)}")


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
