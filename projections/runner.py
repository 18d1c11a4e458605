"""The projection runner: brings the stored read models up to the store's head.

It polls the store's notification log from each model's tracking position + 1, in
pages, and writes each page in one transaction: the models' rows, their new tracking
positions and any snapshots taken inside the page. A crash therefore leaves every
model exactly at the end of a page it wrote: nothing skipped, nothing applied twice.
Polling works on SQLite (whose recorder cannot subscribe) and PostgreSQL alike.

Several runners may run at once (two CLI reads, say): each page's transaction first
locks and re-reads the tracking rows, and a runner that finds them moved by another
drops its in-memory state and carries on from the stored one.

A full rebuild may share its models with a runner in another process (`Beside`): the
models are independent of each other, so each process reads every fact and applies its
own share, writing its own tables; a machine with two cores then rebuilds in the time
of the larger share instead of the sum of both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol, TypeVar

from homeledger.adapters.envelope import Envelope
from homeledger.adapters.errors import StoreBusyError
from homeledger.projections.db import ConflictError, ProjectionDB, Tx, create_indexes, drop_indexes
from homeledger.projections.model import Model, Rows, Table
from homeledger.projections.read_models import MODEL_CLASSES, PROJECTIONS
from homeledger.projections.snapshots import DEFAULT_SNAPSHOT_EVERY, Snapshot, apply_page
from homeledger.projections.source import EventSource

DEFAULT_PAGE = 5000
MAX_ATTEMPTS = 20
Progress = Callable[[int], None]
T = TypeVar("T")


def pages(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def load_model(tx: Tx, name: str, position: int) -> Model:
    """A model as stored at its tracking position."""
    cls = MODEL_CLASSES[name]
    return cls.from_state(tx.load_state(cls, position), position)


@dataclass
class _Page:
    rows: dict[str, Rows] = field(default_factory=dict)
    snapshots: list[Snapshot] = field(default_factory=list)


# What applying each model costs per fact (microseconds, measured on 100,000
# allocation-heavy facts): how a rebuild shares the models between two processes.
REPLAY_COST = {"balances": 14.0, "audit": 7.0, "postings": 6.5, "timeline": 2.5,
               "portfolio": 0.3}  # fmt: skip


def split_work(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The models in two shares of about equal cost (the larger first), each in the
    given order; the second is empty for a single model."""
    shares: tuple[list[str], list[str]] = ([], [])
    costs = [0.0, 0.0]
    for name in sorted(names, key=lambda n: -REPLAY_COST.get(n, 1.0)):
        lighter = 0 if costs[0] <= costs[1] else 1
        shares[lighter].append(name)
        costs[lighter] += REPLAY_COST.get(name, 1.0)
    first, second = (0, 1) if costs[0] >= costs[1] else (1, 0)
    return ([n for n in names if n in shares[first]], [n for n in names if n in shares[second]])


def tables_of(names: Sequence[str]) -> list[Table]:
    return [table for name in names for table in MODEL_CLASSES[name].TABLES]


class Running(Protocol):
    def wait(self) -> None:
        """Until the other process is done; its failure raised here."""

    def stop(self) -> None:
        """End it now (this process failed): what it committed stays, as after a crash."""


class Beside(Protocol):
    def start(self, names: Sequence[str], page: int, snapshot_every: int) -> Running:
        """Catch these models up to the head in another process, starting now, as a
        runner with these settings would, then build their tables' indexes."""


class ProjectionsAheadError(Exception):
    """A read model is past the source's last position: facts it applied were removed."""


class ProjectionRunner:
    def __init__(self, source: EventSource, db: ProjectionDB, *, page: int = DEFAULT_PAGE,
                 snapshot_every: int = DEFAULT_SNAPSHOT_EVERY) -> None:  # fmt: skip
        self.source = source
        self.db = db
        self.page = max(1, page)
        self.snapshot_every = max(1, snapshot_every)

    def pending(self, names: Sequence[str] = PROJECTIONS) -> int:
        """How many positions the furthest-behind model has still to process."""
        self.db.ensure_schema()
        with self.db.read() as tx:
            positions = tx.tracking(names)
        return max(0, self.source.max_position() - min(positions.values(), default=0))

    def ahead_of_store(self, names: Sequence[str] = PROJECTIONS) -> tuple[int, int] | None:
        """(furthest projection position, store head) when a projection is past the head.

        That happens only when facts it applied were removed from the store since.
        """
        with self.db.read() as tx:  # first: runners racing on can only raise the head
            furthest = max(tx.tracking(names).values(), default=0)
        head = self.source.max_position()
        return (furthest, head) if furthest > head else None

    def bring_up_to_date(self) -> None:
        """Catch every model up with the source, for a read that shows current figures;
        refuse when a model is past the source (answering would show lost facts)."""
        self.catch_up()
        ahead = self.ahead_of_store()
        if ahead is not None:
            raise ProjectionsAheadError(
                f"projections are at position {ahead[0]} but the store ends at {ahead[1]}: "
                "facts were removed; run verify"
            )

    def catch_up(self, names: Sequence[str] = PROJECTIONS, progress: Progress | None = None,
                 stop: int | None = None) -> int:  # fmt: skip
        """Process every fact up to the head (or `stop`); the number of facts processed."""
        self.db.ensure_schema()
        done = 0
        for _ in range(MAX_ATTEMPTS):
            try:
                return done + self._catch_up(names, progress, stop)
            except _Moved as moved:
                done += moved.done  # another runner moved on: start again from the store
        raise StoreBusyError("other projection runners kept moving the projections; retry")

    def rebuild(self, names: Sequence[str] = PROJECTIONS, progress: Progress | None = None,
                beside: Beside | None = None) -> int:  # fmt: skip
        """Drop the models' rows and snapshots and rebuild them from position 0; with
        `beside`, about half of the work (by REPLAY_COST) is done in another process.

        The tables' secondary indexes are dropped with the rows and built once at the
        end, from the sorted rows, instead of row by row (a failed or crashed rebuild
        leaves them to `ensure_schema`, which creates missing indexes).
        """
        self.db.ensure_schema()
        with self.db.write() as tx:
            for table in tables_of(names):  # first: rows deleted without their index entries
                drop_indexes(tx, table)
            for name in names:
                tx.clear(MODEL_CLASSES[name])
        try:
            return self._rebuild_rows(names, progress, beside)
        except BaseException:
            self.db.forget_schema()  # this process's next ensure_schema creates them
            raise

    def _rebuild_rows(self, names: Sequence[str], progress: Progress | None,
                      beside: Beside | None) -> int:  # fmt: skip
        mine, theirs = split_work(names)
        running = None
        if beside is not None and theirs:
            running = beside.start(theirs, self.page, self.snapshot_every)
        else:
            mine = list(names)
        try:
            done = self.catch_up(mine, progress)
            self.build_indexes(mine)
        except BaseException:
            if running is not None:
                running.stop()
            raise
        if running is not None:
            running.wait()  # it builds its tables' indexes too
        return done

    def build_indexes(self, names: Sequence[str]) -> None:
        """The secondary indexes of these models' tables, from their rows."""
        with self.db.write() as tx:
            for table in tables_of(names):
                create_indexes(tx, table)

    def _catch_up(self, names: Sequence[str], progress: Progress | None, stop: int | None) -> int:
        head = self.source.max_position() if stop is None else stop
        with self.db.read() as tx:
            behind = {n: p for n, p in tx.tracking(names).items() if p < head}
            models = {n: load_model(tx, n, p) for n, p in behind.items()}
        if not models:
            return 0
        start = min(m.position for m in models.values()) + 1
        done = 0
        for envelopes in pages(self.source.envelopes(start, head), self.page):
            before = {name: model.position for name, model in models.items()}
            try:
                self._write(models, before, self._project(models, envelopes))
            except ConflictError:
                raise _Moved(done) from None
            done += len(envelopes)
            if progress is not None:
                progress(len(envelopes))
        return done

    def _project(self, models: dict[str, Model], envelopes: list[Envelope]) -> _Page:
        page = _Page(snapshots=apply_page(models, envelopes, self.snapshot_every))
        page.rows = {name: model.take_rows() for name, model in models.items()}
        return page

    def _write(self, models: dict[str, Model], before: dict[str, int], page: _Page) -> None:
        """One transaction: rows, tracking positions and snapshots of one page."""
        with self.db.write() as tx:
            if tx.tracking(models, lock=True) != before:
                raise ConflictError
            for name, model in models.items():
                if model.position != before[name]:
                    tx.write_rows(type(model), page.rows[name])
                    tx.set_tracking(name, model.position)
            for name, position, rows in page.snapshots:
                tx.save_snapshot(name, position, rows)


class _Moved(Exception):
    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done
