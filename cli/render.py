"""The one place that prints: table, json, jsonl, csv.

- table: for people. Aligned columns, numbers right-aligned, amounts with thousands
  separators, a list as comma-separated text; a stream of events (events list, tail,
  subscribe, and what a command records) in fixed columns, its header printed once,
  so that it can be printed as it is read.
- json: an indented array of rows (or one indented object); jsonl: one compact object
  per line; csv: a header and one line per row, spreadsheet-safe. None of the machine
  formats is touched by the table's presentation (amounts stay plain decimals).
- An answer with no rows, in a table, says why on stderr in one line instead of an empty
  table; the machine formats print their empty form (`[]`, a csv header) silently.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import click

from homeledger.adapters.hash_chain import ENVELOPE_FIELDS
from homeledger.adapters.hash_chain import compact_json as compact_bytes

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
    stripped = text.lstrip("-").replace(",", "")
    return bool(stripped) and stripped.replace(".", "", 1).isdigit()


_AMOUNT = re.compile(r"-?[0-9]+\.[0-9]{2}")


def table_cell(value: Any) -> str:
    """A value as people read it in a table: an amount with thousands separators, a list
    as comma-separated text."""
    if isinstance(value, list | tuple):
        return ", ".join(table_cell(v) for v in value)
    text = _cell(value)
    if isinstance(value, str) and len(text) > 6 and _AMOUNT.fullmatch(text):
        return with_separators(text)
    return text


def with_separators(amount: str) -> str:
    """"-1234567.50" as "-1,234,567.50" (a fixed-point amount, as the ledger prints it)."""
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    whole, _, cents = digits.partition(".")
    return f"{sign}{int(whole):,}.{cents}"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned columns; numbers (money, counts, positions) right-aligned."""
    cells = [[table_cell(row.get(col)) for col in columns] for row in rows]
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


def say_empty(why: str) -> None:
    """An answer with no rows says why, on stderr (stdout keeps its format)."""
    click.echo(why, err=True)


def emit_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str,
              empty: str | None = None) -> None:  # fmt: skip
    """Print rows of plain values in the chosen format (streams for json/jsonl/csv);
    with no rows, a table is `empty`: one line on stderr saying why."""
    counted = _Counted(rows)
    if fmt == "table":
        found = list(counted)
        if found or empty is None:
            click.echo(table(found, columns))
    elif fmt == "jsonl":
        for row in counted:
            click.echo(compact_json(row))
    elif fmt == "csv":
        for line in csv_rows(counted, columns):
            click.echo(line, nl=False)
    else:
        emit_json_array(counted)
    if counted.count == 0 and empty is not None and fmt == "table":
        say_empty(empty)


class _Counted:
    """An iterable that counts what was taken from it."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.count += 1
            yield item


def compact_json(value: Any) -> str:
    """json.dumps(value, separators=(",", ":")): one line of JSON (orjson where it
    writes the same text)."""
    return compact_bytes(value).decode()


def json_item(item: Any, first: bool) -> str:
    """One element of an indented JSON array (as `json.dumps(..., indent=2)` writes it)."""
    body = json.dumps(item, indent=2).replace("\n", "\n  ")
    return ("[\n  " if first else ",\n  ") + body


def emit_json_array(items: Iterable[Any]) -> None:
    """An indented JSON array, written as its elements come."""
    first = True
    for item in items:
        click.echo(json_item(item, first), nl=False)
        first = False
    click.echo("[]" if first else "\n]")


# Envelopes: the JSON forms are the published envelope; table and csv flatten it.

EVENT_COLUMNS = ("position", "recorded_at", "effective_date", "type", "scope", "amount",
                 "actor", "detail")  # fmt: skip


Data = dict[str, Any]


def _reversal(data: Data) -> str:
    amount = f" ({data['original']['amount']})" if "amount" in data["original"] else ""
    return (f"reverses {data['reversed_type']} at {data['reversed_position']}{amount}: "
            f"{data['reason']}")  # fmt: skip


# What the table's DETAIL column says of each type of event.
DETAILS: dict[str, Callable[[Data], str]] = {
    "PartnershipEstablished": lambda d: f"{d['donor']} -> {d['beneficiary']}, "
    f"{d['rate']} {d['currency']}/home, {d['basis']}",
    "UnitsAcquired": lambda d: f"+{d['units']} homes",
    "UnitsDisposed": lambda d: f"-{d['units']} homes",
    "DonationPledged": lambda d: f"delta {d['delta']}, basis {d['unit_basis']}",
    "DonationReceived": lambda d: f"received {d['received_on']}",
    "InitiativeRegistered": lambda d: f"{d['name']} ({d['country']})",
    "FundsAllocated": lambda d: f"{d['year']} allocation {d['allocation_id']}",
    "AllocationReleased": lambda d: f"{d['allocation_id']}: {d['reason']}",
    "FundsDisbursed": lambda d: f"disbursed {d['disbursed_on']}",
    "MilestoneReached": lambda d: str(d["milestone"]),
    "InitiativeClosed": lambda d: str(d.get("reason", "")),
    "LedgerSealed": lambda d: f"up to {d['position']}: {d['digest'][:16]}",
    "FactReversed": _reversal,
}


def summary(envelope: Envelope) -> dict[str, Any]:
    """An event as one line of the table: plain values."""
    from homeledger.adapters.envelope import format_time

    data = envelope.data
    return {
        "position": envelope.position,
        "recorded_at": format_time(envelope.recorded_at),
        "effective_date": envelope.effective_date.isoformat(),
        "type": envelope.type,
        "scope": envelope.scope,
        "amount": data.get("amount"),
        "actor": envelope.actor,
        "detail": DETAILS[envelope.type](data),
    }


def emit_envelopes(envelopes: Iterable[Envelope], fmt: str, empty: str | None = None) -> None:
    """Events as they are read, in constant memory: the table in fixed columns."""
    printer = EventPrinter(fmt)
    printer.start()
    for envelope in envelopes:
        printer.event(envelope)
    printer.finish()
    if printer.count == 0 and empty is not None and fmt == "table":
        say_empty(empty)


class EventPrinter:
    """Prints events one by one as they arrive (events list, tail, subscribe, what a
    command recorded), in the chosen format: a table of fixed columns whose header is
    printed once (a wider value widens its own line only), an indented json array,
    jsonl, csv."""

    TABLE = ("{position:>8}  {recorded_at:<27}  {effective_date:<14}  {type:<22}  {scope:<20}  "
             "{amount:>16}  {actor:<20}  {detail}")  # fmt: skip
    HEADER: ClassVar[dict[str, str]] = {c: c.upper().replace("_", " ") for c in EVENT_COLUMNS}

    BUFFER = 1000  # lines written at once: a stream of events is not written line by line

    def __init__(self, fmt: str, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out
        self.count = 0
        self.started = False
        self._pending: list[str] = []
        from homeledger.adapters.envelope import format_time

        self._time = format_time

    def _echo(self, text: str, nl: bool = True) -> None:
        self._pending.append(text + "\n" if nl else text)
        if len(self._pending) >= self.BUFFER:
            self.flush()

    def flush(self) -> None:
        """Write what is pending (a follower calls it after each batch it receives)."""
        if self._pending:
            click.echo("".join(self._pending), nl=False, file=self.out)
            self._pending.clear()

    def start(self) -> None:
        """The header (csv; a table's comes with its first event, so that an empty
        answer prints none); json's array opens with the first event."""
        self.started = True
        if self.fmt == "csv":
            self._echo(",".join(ENVELOPE_FIELDS))
        self.flush()

    def event(self, envelope: Envelope) -> None:
        if self.fmt == "table":
            if self.count == 0:
                self._echo(self.TABLE.format(**self.HEADER).rstrip())
            self._echo(self._line(envelope))
        elif self.fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="")
            writer.writerow([csv_safe(v) for v in envelope.to_dict().values()])
            self._echo(buffer.getvalue())
        elif self.fmt == "json":
            self._echo(json_item(envelope.to_dict(), self.count == 0), nl=False)
        else:
            self._echo(compact_json(envelope.to_dict()))
        self.count += 1

    def _line(self, e: Envelope) -> str:
        """One event in the table's fixed columns (TABLE, written out: a stream of many)."""
        data = e.data
        amount = data.get("amount")
        shown = "" if amount is None else table_cell(amount)
        return (f"{e.position:>8}  {self._time(e.recorded_at):<27}  "
                f"{e.effective_date.isoformat():<14}  {e.type:<22}  {e.scope:<20}  "
                f"{shown:>16}  {e.actor:<20}  {DETAILS[e.type](data)}").rstrip()  # fmt: skip

    def finish(self) -> None:
        if self.fmt == "json":
            self._echo("[]" if self.count == 0 else "\n]")
        self.flush()


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
            click.echo(f"{key.ljust(width)}  {table_cell(value)}".rstrip())


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
