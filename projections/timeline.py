"""The timeline: which prefix of the ledger was recorded by a given time.

"As of recorded time T" means the longest prefix of the ledger (positions 1..N) in
which every fact was recorded at or before T. Recording times almost always grow
with the position; when clocks of two writers disagree they may not, and a prefix
never includes a fact recorded after T. The model keeps, per position, the latest
recording time seen up to it (`known_by`, which never decreases), so N is the
largest position whose `known_by` is at or before T: one indexed lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

from homeledger.adapters.envelope import Envelope
from homeledger.projections.model import Model, Rows, Table, normalise, time_text

TIMELINE = Table(
    "hl_proj_timeline",
    (("position", "INT"), ("recorded_at", "TEXT"), ("known_by", "TEXT")),
    ("position",),
    log=True,
    indexes=(("known_by",),),
)
_LAST = (
    "SELECT known_by FROM hl_proj_timeline WHERE position = "
    "(SELECT MAX(position) FROM hl_proj_timeline WHERE position <= ?)"
)
# Times are stored as fixed-width UTC ISO strings, so text order is time order.
POSITION_AT = "SELECT MAX(position) FROM hl_proj_timeline WHERE known_by <= ?"


class TimelineModel(Model):
    NAME = "timeline"
    TABLES = (TIMELINE,)
    STATE_QUERIES: ClassVar[dict[str, str]] = {"known_by": _LAST}

    def __init__(self) -> None:
        super().__init__()
        self.known_by = ""
        # In memory only: (position, known_by) of every fact applied, when kept.
        self.kept: list[tuple[int, str]] | None = None

    def _handlers(self) -> dict[str, Callable[[Envelope, Any], None]]:
        return {}

    def apply(self, envelope: Envelope) -> None:
        if envelope.position <= self.position:
            return
        recorded_at = time_text(envelope.recorded_at)
        self.known_by = max(self.known_by, recorded_at)
        self._append(TIMELINE.name, (envelope.position, recorded_at, self.known_by))
        if self.kept is not None:
            self.kept.append((envelope.position, self.known_by))
        self.position = envelope.position

    def position_at(self, moment: str) -> int:
        """In memory: the position as of recorded time `moment` (needs kept entries)."""
        if self.kept is None:
            raise ValueError("this timeline does not keep its entries in memory")
        return max((pos for pos, known in self.kept if known <= moment), default=0)

    def state_rows(self) -> Rows:
        return {"known_by": [(self.known_by,)] if self.known_by else []}

    @classmethod
    def from_state(cls, rows: Rows, position: int) -> Self:
        model = cls()
        model.position = position
        for (known_by,) in normalise(rows.get("known_by", [])):
            model.known_by = known_by
        return model
