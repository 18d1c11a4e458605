"""The per-initiative audit trail: every fact that touched an initiative, in order.

One row per fact (registered, allocated, released, disbursed, milestone, closed, and
the reversal of a disbursement or a milestone), with where and when it was recorded,
who recorded it under which command, the amounts it moved and the initiative's
running balance after it. A reversal is a line of its own that names the position of
the line it reverses (`reversed_position`); the reversed line stays as it was. The
columns are the auditor's export format (`homeledger audit INITIATIVE --format
csv|json`) and are documented in docs/auditing.md; they are only ever added to, never
renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Self

from homeledger.adapters.envelope import Envelope
from homeledger.domain import events as e
from homeledger.domain.events import INITIATIVE_FACTS
from homeledger.projections.model import (
    Model,
    Row,
    Rows,
    Table,
    money,
    normalise,
    time_text,
    to_cents,
)

# The export columns, in order. Money columns are two-decimal strings.
AUDIT_COLUMNS = (
    "initiative", "seq", "position", "recorded_at", "effective_date", "type", "event_id",
    "actor", "command_id", "correlation_id", "allocation_id", "year", "amount", "change",
    "allocated", "released", "disbursed", "balance", "detail", "hash", "reversed_position",
)  # fmt: skip
MONEY_COLUMNS = frozenset({"amount", "change", "allocated", "released", "disbursed", "balance"})
INT_COLUMNS = frozenset({"seq", "position", "year", "reversed_position"})

AUDIT = Table(
    "hl_proj_audit",
    tuple((name, "INT" if name in MONEY_COLUMNS | INT_COLUMNS else "TEXT")
          for name in AUDIT_COLUMNS),
    ("position",),
    log=True,
    indexes=(("initiative", "position"),),
)  # fmt: skip
_LAST_ROWS = (
    "SELECT initiative, seq, allocated, released, disbursed FROM hl_proj_audit "
    "WHERE position IN (SELECT MAX(position) FROM hl_proj_audit WHERE position <= ? "
    "GROUP BY initiative) ORDER BY initiative"
)


@dataclass
class TrailHead:
    """Where an initiative's trail stands: rows so far and the running totals in cents.

    Every amount on the ledger has at most two decimals, so sums in cents are exact.
    """

    seq: int = 0
    allocated: int = 0
    released: int = 0
    disbursed: int = 0

    @property
    def balance(self) -> int:
        """Allocated, not released and not yet disbursed (cents)."""
        return self.allocated - self.released - self.disbursed

    def move(self, kind: str, cents: int | None) -> int | None:
        """Add a fact's amount to the running totals; its signed effect on the balance."""
        if cents is None:
            return None
        if kind == e.FundsAllocated.TYPE:
            self.allocated += cents
            return cents
        if kind == e.AllocationReleased.TYPE:
            self.released += cents
            return -cents
        if kind == e.FundsDisbursed.TYPE:
            self.disbursed += cents
            return -cents
        if kind == e.FactReversed.TYPE:  # of a disbursement: the money is available again
            self.disbursed -= cents
            return cents
        return None


class AuditModel(Model):
    NAME = "audit"
    TABLES = (AUDIT,)
    STATE_QUERIES: ClassVar[dict[str, str]] = {"heads": _LAST_ROWS}

    def __init__(self, *, keep_trails: bool = False) -> None:
        super().__init__()
        self.heads: dict[str, TrailHead] = {}
        # In memory (a consumer, a test): every row, per initiative, as well.
        self.trails: dict[str, list[Row]] | None = {} if keep_trails else None

    def _handlers(self) -> dict[str, Callable[[Envelope, Any], None]]:
        handlers: dict[str, Callable[[Envelope, Any], None]] = {
            kind: self._touched for kind in INITIATIVE_FACTS
        }
        handlers[e.FactReversed.TYPE] = self._reversed
        return handlers

    def _touched(self, env: Envelope, ev: Any) -> None:
        fields = ev.__dict__  # plain lookups: pydantic's __getattr__ is slow for a miss
        amount = fields.get("amount")
        cents = None if amount is None else to_cents(amount)
        self._line(env, ev.initiative, ev.TYPE, cents, fields.get("allocation_id"),
                   fields.get("year"), _detail(ev), None)  # fmt: skip

    def _reversed(self, env: Envelope, ev: e.FactReversed) -> None:
        taken = ev.reversed_fact
        if taken.TYPE not in INITIATIVE_FACTS:
            return
        amount = taken.__dict__.get("amount")
        detail = f"reverses {taken.TYPE} at position {ev.reversed_position}: {ev.reason}"
        self._line(env, taken.__dict__["initiative"], ev.TYPE,
                   None if amount is None else to_cents(amount), None, None, detail,
                   ev.reversed_position)  # fmt: skip

    def _line(self, env: Envelope, initiative: str, kind: str, cents: int | None,
              allocation_id: str | None, year: int | None, detail: str,
              reversed_position: int | None) -> None:  # fmt: skip
        head = self.heads.get(initiative)
        if head is None:
            head = self.heads[initiative] = TrailHead()
        change = head.move(kind, cents)
        head.seq += 1
        row = (
            initiative, head.seq, env.position, time_text(env.recorded_at),
            env.effective_date.isoformat(), env.type, env.event_id, env.actor, env.command_id,
            env.correlation_id, allocation_id, year, cents, change, head.allocated,
            head.released, head.disbursed, head.balance, detail, env.hash, reversed_position,
        )  # fmt: skip
        self._append(AUDIT.name, row)
        if self.trails is not None:
            self.trails.setdefault(initiative, []).append(row)

    def state_rows(self) -> Rows:
        return {
            "heads": [
                (key, h.seq, h.allocated, h.released, h.disbursed)
                for key, h in sorted(self.heads.items())
            ]
        }

    @classmethod
    def from_state(cls, rows: Rows, position: int) -> Self:
        model = cls()
        model.position = position
        for key, seq, allocated, released, disbursed in normalise(rows.get("heads", [])):
            model.heads[key] = TrailHead(int(seq), int(allocated), int(released), int(disbursed))
        return model

    def trail(self, initiative: str) -> list[dict[str, Any]]:
        """The kept rows of one initiative (only with keep_trails)."""
        if self.trails is None:
            raise ValueError("this audit model does not keep its trails in memory")
        return [audit_record(row) for row in self.trails.get(initiative, [])]


def _detail(ev: Any) -> str:
    kind = ev.TYPE
    if kind == e.InitiativeRegistered.TYPE:
        return f"{ev.name} ({ev.country}, {ev.programme})"
    if kind in (e.AllocationReleased.TYPE, e.InitiativeClosed.TYPE):
        return ev.reason  # type: ignore[no-any-return]
    if kind == e.MilestoneReached.TYPE:
        return ev.milestone + (f" [evidence: {ev.evidence}]" if ev.evidence else "")  # type: ignore[no-any-return]
    return ""


def cut_trail(rows: list[Row], day: date) -> list[Row]:
    """The trail of the facts effective on or before `day` only, as those facts alone
    build it: numbered and totalled anew. A reversal counts where the line it reverses
    counts (it takes that line back)."""
    index = {name: i for i, name in enumerate(AUDIT_COLUMNS)}
    at, on, kind = index["position"], index["effective_date"], index["type"]
    dates = {row[at]: row[on] for row in rows}
    cut: list[Row] = []
    head = TrailHead()
    for row in rows:
        reversed_position = row[index["reversed_position"]]
        counts_from = str(dates.get(reversed_position, row[on]))
        if counts_from > day.isoformat():
            continue
        change = head.move(row[kind], row[index["amount"]])
        head.seq += 1
        line = list(row)
        line[index["seq"]], line[index["change"]] = head.seq, change
        line[index["allocated"]], line[index["released"]] = head.allocated, head.released
        line[index["disbursed"]], line[index["balance"]] = head.disbursed, head.balance
        cut.append(tuple(line))
    return cut


def audit_record(row: Row) -> dict[str, Any]:
    """One stored audit row as the export prints it: money as two-decimal strings."""
    record = dict(zip(AUDIT_COLUMNS, row, strict=True))
    for name in MONEY_COLUMNS:
        if record[name] is not None:
            record[name] = money(record[name])
    return record
