"""What the read models are built from: the ledger's store, or a consumer's applied log.

The store (`homeledger.adapters.store.LedgerStore`) and a consumer-side store built
from the stream (`homeledger.projections.consumer_store.AppliedLog`) both satisfy it,
so the runner and the point-in-time reader work on either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from homeledger.adapters.envelope import Envelope


class EventSource(Protocol):
    def max_position(self) -> int:
        """The position of the last fact (0 when there is none)."""
        ...

    def envelopes(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        """The facts from position `start` to `stop` (inclusive), in order, read in pages."""
        ...
