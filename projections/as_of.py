"""Point-in-time reads: every read model as of position N, exactly as a fresh replay.

"As of position N" is the state after the facts at positions 1..N. "As of recorded
time T" is as of the largest position N such that every fact at positions 1..N was
recorded at or before T (see projections.timeline); positions past the head mean
the head.

Log-backed models (audit trail, portfolio, timeline) are read with `position <= N`.
Keyed models (balances, double entry) start from the latest snapshot at or below N
(or from their current state when N is their tracking position) and replay the few
facts between from the store, with the same code that built them.

"Effective on or before D" (`to`) cuts by business date as well: the balances and the
audit trail as the facts at positions 1..N effective on or before D alone build them
(a reversal counts where its reversed fact counts). Balances sum their log of
movements (`position <= N AND effect_date <= D`); a trail is cut and totalled anew
from its rows. Neither replays a fact.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from homeledger.adapters.envelope import format_time
from homeledger.projections.audit_trail import AUDIT, AUDIT_COLUMNS, audit_record, cut_trail
from homeledger.projections.balances import CUT_PLEDGES, CUT_SUMS, BalancesModel
from homeledger.projections.db import ProjectionDB
from homeledger.projections.double_entry import DoubleEntryModel, TrialBalance
from homeledger.projections.model import Model
from homeledger.projections.portfolio import PortfolioModel
from homeledger.projections.read_models import MODEL_CLASSES, PROJECTIONS
from homeledger.projections.source import EventSource
from homeledger.projections.timeline import POSITION_AT, TIMELINE


class UnknownInitiativeError(ValueError):
    """An initiative with no trail (as of the position asked)."""


class PointInTime:
    """Reads of the stored models; call after the runner has caught up."""

    def __init__(self, source: EventSource, db: ProjectionDB) -> None:
        self.source = source
        self.db = db

    def projected_to(self) -> int:
        """The position every model has reached."""
        with self.db.read() as tx:
            return min(tx.tracking(PROJECTIONS).values())

    def resolve(self, position: int | None = None, moment: datetime | None = None) -> int:
        """The position a read answers as of: N, the prefix recorded by T, or the last
        position projected."""
        head = self.projected_to()
        if position is not None:
            return max(0, min(position, head))
        if moment is not None:
            with self.db.read() as tx:
                found = tx.query(POSITION_AT, (format_time(moment),))
            return min(int(found[0][0] or 0), head) if found else 0
        return head

    def known_by(self, position: int) -> str | None:
        """When the facts 1..N had all been recorded (None before the first)."""
        with self.db.read() as tx:
            rows = tx.query(f"SELECT MAX(known_by) FROM {TIMELINE.name} WHERE position <= ?",
                            (position,))  # fmt: skip
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def first_recorded(self) -> str | None:
        """When the first fact was recorded (None when there is none)."""
        with self.db.read() as tx:
            rows = tx.query(f"SELECT recorded_at FROM {TIMELINE.name} ORDER BY position LIMIT 1")
        return str(rows[0][0]) if rows else None

    def model(self, name: str, position: int) -> Model:
        """A model as of `position`, rebuilt as a fresh replay would have it."""
        cls = MODEL_CLASSES[name]
        with self.db.read() as tx:
            tracked = tx.tracking([name])[name]
            if position >= tracked:
                base = cls.from_state(tx.load_state(cls, tracked), tracked)
            elif not cls.SNAPSHOTTED:
                base = cls.from_state(tx.load_state(cls, position), position)
            else:
                snapshot = tx.nearest_snapshot(name, position)
                base = cls() if snapshot is None else cls.from_state(snapshot[1], snapshot[0])
        if base.position < position:
            for envelope in self.source.envelopes(base.position + 1, position):
                base.apply(envelope)
        base.position = position
        return base

    def balances(self, position: int, to: date | None = None) -> BalancesModel:
        """Balances as of `position`; with `to`, of the facts effective on or before it."""
        model = cast(BalancesModel, self.model(BalancesModel.NAME, position))
        if to is None:
            return model
        with self.db.read() as tx:
            bounds = (position, to.isoformat())
            return model.cut(tx.query(CUT_SUMS, bounds), tx.query(CUT_PLEDGES, bounds))

    def trial_balance(self, position: int) -> TrialBalance:
        return cast(DoubleEntryModel, self.model(DoubleEntryModel.NAME, position)).trial_balance()

    def portfolio(self, position: int, on: date) -> list[dict[str, Any]]:
        return cast(PortfolioModel, self.model(PortfolioModel.NAME, position)).held_on(on)

    def audit_rows(self, initiative: str, position: int,
                   to: date | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """The initiative's trail as of `position`; with `to`, of the facts effective on or
        before it."""
        with self.db.read() as tx:
            rows = tx.query(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {AUDIT.name} "
                "WHERE initiative = ? AND position <= ? ORDER BY position",
                (initiative, position),
            )
        if not rows:
            raise UnknownInitiativeError(
                f"initiative {initiative!r} has no recorded facts as of position {position}"
            )
        return [audit_record(row) for row in (rows if to is None else cut_trail(rows, to))]

    def audit_rows_of_types(
        self, types: tuple[str, ...], first: date, last: date, position: int
    ) -> list[dict[str, Any]]:
        """Trail rows of these types with an effective date in first..last, any initiative,
        as of `position`; those reversed by then are left out."""
        marks = ", ".join("?" * len(types))
        with self.db.read() as tx:
            rows = tx.query(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {AUDIT.name} WHERE position <= ? "
                f"AND type IN ({marks}) AND effective_date >= ? AND effective_date <= ? "
                "AND position NOT IN (SELECT reversed_position FROM "
                f"{AUDIT.name} WHERE position <= ? AND reversed_position IS NOT NULL) "
                "ORDER BY position",
                (position, *types, first.isoformat(), last.isoformat(), position),
            )
        return [audit_record(row) for row in rows]
