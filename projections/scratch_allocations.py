"""The allocations of a replay, kept on disk while it runs.

A ledger replayed from the first fact (by `verify`) would otherwise hold every
allocation ever made in memory: about a kilobyte each, a gigabyte for a million. The
replay keeps the allocations its last page of facts changed in memory and moves them
here after each page; the ledger finds the others with `lookup`, as the store's own
ledger finds them in the store's allocation table. The file lives in a temporary folder
of its own, is never synced (a crashed replay starts again from the first fact) and is
removed by `close`.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from homeledger.adapters.store import allocation_row, allocations_by_id
from homeledger.domain.ledger import Allocation, Allocations

PAGE = 1000


class ScratchAllocations:
    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="homeledger-replay-")
        self.conn = sqlite3.connect(Path(self._folder.name) / "allocations.db",
                                    isolation_level=None)  # fmt: skip
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(
            "CREATE TABLE allocations (allocation_id TEXT PRIMARY KEY, initiative TEXT NOT "
            "NULL, year INTEGER NOT NULL, amount INTEGER NOT NULL, released INTEGER NOT NULL)"
            " WITHOUT ROWID"
        )

    def lookup(self, allocation_id: str) -> Allocation | None:
        return self.many([allocation_id])[allocation_id]

    def many(self, allocation_ids: list[str]) -> dict[str, Allocation | None]:
        """The allocations of these ids (None for an id with none), read in bulk."""
        return allocations_by_id(self.conn.execute, "allocations", allocation_ids)

    def keep(self, allocations: Allocations) -> Allocations:
        """Move the changed allocations here; the same allocations, none in memory."""
        if allocations.changed:
            rows = [allocation_row(a) for a in allocations.changed.values()]
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT OR REPLACE INTO allocations VALUES (?,?,?,?,?)", rows)
            self.conn.execute("COMMIT")
        return Allocations(self.lookup)

    def ids(self) -> Iterator[list[str]]:
        """Every allocation id, a page at a time."""
        after = ""
        while page := [row[0] for row in self.conn.execute(
            "SELECT allocation_id FROM allocations WHERE allocation_id > ? "
            f"ORDER BY allocation_id LIMIT {PAGE}", (after,))]:  # fmt: skip
            yield page
            after = page[-1]

    def close(self) -> None:
        self.conn.close()
        self._folder.cleanup()
