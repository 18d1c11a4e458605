"""The relay's position: the last store position JetStream acknowledged, per stream.

Kept in the eventsourcing library's tracking table (application name
`relay:<stream>`), in the store's own database. It only moves forward: a position is
recorded after JetStream acknowledged every event up to it, and a racing relay that
recorded a later one first wins.
"""

from __future__ import annotations

import contextlib

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder

from homeledger.adapters.store import LedgerStore


def relay_name(stream: str) -> str:
    """The tracking name of the relay to one stream."""
    return f"relay:{stream}"


class RelayPosition:
    def __init__(self, store: LedgerStore, stream: str) -> None:
        self.store = store
        self.name = relay_name(stream)
        self._recorder: TrackingRecorder | None = None

    @property
    def recorder(self) -> TrackingRecorder:
        if self._recorder is None:
            self._recorder = self.store.tracking_recorder()
        return self._recorder

    def read(self) -> int:
        """The recorded position (0 before the first acknowledgement)."""
        return self.recorder.max_tracking_id(self.name) or 0

    def record(self, position: int) -> None:
        """Record `position`; one another relay recorded first is kept as it is."""
        with contextlib.suppress(IntegrityError):
            self.recorder.insert_tracking(Tracking(self.name, position))
