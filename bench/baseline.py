"""The raw eventsourcing baseline for batched recording: the library alone."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Journal(Aggregate):
    """One aggregate, one kind of event carrying a command's fields as its payload."""

    def __init__(self) -> None:
        self.count = 0

    @event("Recorded")
    def record(self, payload: dict[str, Any]) -> None:
        self.count += 1


class BatchBaseline(Application[Any]):
    # Its own name: on PostgreSQL its table is "homeledgerbenchbatch_events".
    name = "HomeledgerBenchBatch"


def save_in_batches(env: dict[str, str], payloads: list[dict[str, Any]], batch: int) -> float:
    """Seconds to save one event per payload, `batch` events per transaction."""
    app = BatchBaseline(env=env)
    try:
        started = perf_counter()
        journal = Journal()
        pending = 1  # the created event
        for payload in payloads:
            journal.record(payload)
            pending += 1
            if pending >= batch:
                app.save(journal)
                pending = 0
        if pending:
            app.save(journal)
        return perf_counter() - started
    finally:
        app.close()
