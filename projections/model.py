"""What every read model shares: its tables, its rows, and the position it has reached.

A model is plain in-memory state plus pure functions of it: `apply` evolves it by one
recorded fact, `take_rows` hands over the rows written since the last call, and
`state_rows` / `from_state` turn the compact state into rows and back. The same
code therefore serves an incremental update, a full rebuild, a point-in-time
replay from a checkpoint and a consumer that builds its views from NATS. Nothing
here does I/O: `projections.db` stores the rows.

Money is Decimal in the models and integer cents in the tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar, Self

from homeledger.adapters.envelope import Envelope, format_time
from homeledger.domain.money import CENT, fmt

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]


def to_cents(amount: Decimal) -> int:
    """Exact: every amount on the ledger has at most two decimals."""
    return int(amount.scaleb(2))


@lru_cache(maxsize=1024)
def time_text(moment: datetime) -> str:
    """The wire form of a recording time (facts recorded together share one)."""
    return format_time(moment)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def money(cents: int) -> str:
    """The two-decimal wire form of an amount held in cents."""
    return fmt(from_cents(cents))


@dataclass(frozen=True)
class Table:
    """One table of a model.

    A keyed table holds current state, one row per key, upserted when it changes.
    A log table only grows: one or more rows per fact, keyed by position first, so
    that "as of position N" is `WHERE position <= N`.
    """

    name: str
    columns: tuple[tuple[str, str], ...]  # (name, INT | TEXT)
    key: tuple[str, ...]
    log: bool = False
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


class Model(ABC):
    """A read model: state as of `position`, evolved fact by fact."""

    NAME: ClassVar[str]
    TABLES: ClassVar[tuple[Table, ...]]
    # Point in time: log-backed models are read with `WHERE position <= N`; keyed
    # models replay from the nearest stored checkpoint of their state.
    SNAPSHOTTED: ClassVar[bool] = False
    # name -> SQL returning the compact state as rows; a `?` is the position bound.
    STATE_QUERIES: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.position = 0
        self._log: Rows = {}
        self._dirty: dict[str, set[Any]] = {}
        self._on = self._handlers()

    def apply(self, envelope: Envelope) -> None:
        """Evolve by one recorded fact (facts at or below `position` are ignored)."""
        if envelope.position <= self.position:
            return
        handler = self._on.get(envelope.type)
        if handler is not None:
            handler(envelope, envelope.fact)
        self.position = envelope.position

    @abstractmethod
    def _handlers(self) -> dict[str, Callable[[Envelope, Any], None]]:
        """Which facts change this model (by type name, whatever its schema version), and
        how."""

    # Rows out.

    def _append(self, table: str, row: Row) -> None:
        rows = self._log.get(table)  # not setdefault: it builds a new list on every call
        if rows is None:
            rows = self._log[table] = []
        rows.append(row)

    def _touch(self, table: str, key: Any) -> None:
        keys = self._dirty.get(table)
        if keys is None:
            keys = self._dirty[table] = set()
        keys.add(key)

    def take_rows(self) -> Rows:
        """Rows to write since the last call: new log rows, and keyed rows that changed."""
        rows = self._log
        for table, keys in self._dirty.items():
            rows[table] = [self._keyed_row(table, key) for key in sorted(keys)]
        self._log, self._dirty = {}, {}
        return rows

    def _keyed_row(self, table: str, key: Any) -> Row:
        raise NotImplementedError(f"{type(self).__name__} has no keyed table {table}")

    # Compact state: for checkpoints, for loading, and for comparing with a rebuild.

    @abstractmethod
    def state_rows(self) -> Rows:
        """The compact state, as rows shaped like the STATE_QUERIES results."""

    @classmethod
    @abstractmethod
    def from_state(cls, rows: Rows, position: int) -> Self:
        """The model rebuilt from its compact state as of `position`."""

    def same_state(self, other: Model) -> bool:
        return self.position == other.position and self.state_rows() == other.state_rows()


def normalise(rows: Iterable[Iterable[Any]]) -> list[Row]:
    """Rows as tuples, whatever the driver or JSON decoding handed over."""
    return [tuple(row) for row in rows]
