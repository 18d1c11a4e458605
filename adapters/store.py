"""The event store: the eventsourcing library's recorders, our mapper, and snapshots.

SQLite or PostgreSQL, chosen by the store URL; the same code runs on both. Besides
appending and reading facts, the store loads the ledger's decision state (from the
latest trusted snapshot and the facts after it) and keeps the relay's position table.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.utils import Environment

from homeledger.adapters.envelope import Envelope, decode_json, envelope_from_body
from homeledger.adapters.errors import (
    ConfigError,
    LedgerIntegrityError,
    StoreBusyError,
    StoreUnavailableError,
    first_line,
)
from homeledger.adapters.hash_chain import (
    BROKEN_LINK,
    GENESIS_HASH,
    LEDGER_ID,
    ChainWalk,
    canonical_json,
    chain_hash,
    link_problem,
)
from homeledger.adapters.idempotency import Receipt
from homeledger.adapters.ledger_snapshot import (
    authentic,
    ledger_from_dict,
    ledger_to_dict,
    snapshot_body,
)
from homeledger.adapters.postgres import Timeouts, bounded, connection_kwargs
from homeledger.adapters.recorders import (
    ALLOCATIONS_AT_TABLE,
    ALLOCATIONS_TABLE,
    AllocationRow,
    LedgerRecorder,
)
from homeledger.adapters.settings import APP_NAME, StoreLocation
from homeledger.adapters.sql import create_private
from homeledger.domain.errors import DomainError
from homeledger.domain.events import AllocationReleased, FundsAllocated, UnknownEventTypeError
from homeledger.domain.ledger import (
    Allocation,
    Allocations,
    Ledger,
    RecordedFact,
    RecordedFacts,
    allocation_after,
    recorded_fact,
)
from homeledger.domain.money import CENT

if TYPE_CHECKING:  # psycopg is loaded for a postgresql:// store only
    from eventsourcing.postgres import PostgresAggregateRecorder

    from homeledger.adapters.postgres_recorder import LedgerPostgresRecorder

TOPIC_PREFIX = "homeledger:"
SNAPSHOT_TOPIC = TOPIC_PREFIX + "snapshot"
PAGE = 1000
# The eventsourcing library's events table: on SQLite, and on PostgreSQL.
EVENT_TABLES = ("stored_events", f"{APP_NAME}_events")


def topic_for(event_type: str) -> str:
    """The stored topic: an explicit, stable name, never a Python class path."""
    return TOPIC_PREFIX + event_type


@dataclass
class StoredChain:
    """The hash chain walked over stored facts: `hash_chain`'s check of each body, and
    what the store's own columns (aggregate id, version, topic) say against it.

    A problem is placed at the fact that was changed: when a fact's `prev_hash` no
    longer matches the fact before it while both are intact in themselves (each hash
    covers its content), the one before was edited and its own hash recomputed, and
    that is where the problem is reported. (The same two facts would also result from
    editing the later fact's `prev_hash` and re-hashing it: the database alone cannot
    tell the two apart, and the earlier is named.)"""

    walk: ChainWalk = field(default_factory=ChainWalk)
    _previous: tuple[int, bool] = (0, False)  # the last position checked, and intact?

    def check(self, stored: Notification, body: dict[str, Any]) -> tuple[int, str] | None:
        """Check one stored fact (in position order) and move past it: where the first
        problem it reveals is, and what it is."""
        problem = self.walk.step(body, stored.originator_version)
        if problem is None and stored.originator_id != LEDGER_ID:
            problem = "stored under another aggregate id: the ledger does not see it"
        if problem is None and stored.topic != topic_for(str(body.get("type"))):
            problem = "stored topic does not match the event type"
        found = None if problem is None else (stored.id, problem)
        earlier, intact = self._previous
        if problem == BROKEN_LINK and intact and chain_hash(body) == body["hash"]:
            found = (earlier, "the fact was changed and its own hash recomputed: the next "
                     "fact recorded another hash for it")  # fmt: skip
        self._previous = (stored.id, problem is None)
        return found


class WriteSession:
    """What a write transaction can do: append facts and receipts, and read back (through
    its own cursor) the receipts and facts it or earlier writers stored."""

    def __init__(self, store: LedgerStore, cursor: Any) -> None:
        self.store, self.cursor = store, cursor
        self.receipts_written: list[Receipt] = []

    def allocations(self, allocation_ids: Sequence[str]) -> dict[str, Allocation | None]:
        """The allocations of these ids as stored (None for an id with none), in bulk."""
        rows = self.store.recorder.allocations_in(self.cursor, allocation_ids)
        return {i: (allocation_of_row(rows[i]) if i in rows else None) for i in allocation_ids}

    def save_allocations(self, changed: dict[str, Allocation], version: int) -> None:
        """Keep the allocations changed by the facts appended, the table now current at
        ledger `version` (called after every append)."""
        rows = [allocation_row(a) for a in changed.values()]
        self.store.recorder.save_allocations_in(self.cursor, rows, version)

    def rebuild_allocations(self) -> int:
        """The allocation table made again from every stored fact; the version it is at."""
        allocations: dict[str, Allocation] = {}
        version = 0
        while bodies := self.facts_after(version, PAGE):
            for body in bodies:
                fact = envelope_from_body(body, 0).fact
                if isinstance(fact, FundsAllocated | AllocationReleased):
                    allocations[fact.allocation_id] = allocation_after(
                        allocations.get(fact.allocation_id), fact
                    )
                version = int(body["aggregate_version"])
        recorder = self.store.recorder
        recorder.clear_allocations_in(self.cursor)
        recorder.save_allocations_in(
            self.cursor, [allocation_row(a) for a in allocations.values()], version
        )
        return version

    def append(self, bodies: Sequence[dict[str, Any]], receipts: Sequence[Receipt],
               encoded: Sequence[bytes] | None = None) -> list[int]:  # fmt: skip
        """Insert facts and receipts; positions of the facts, in order (uncommitted).
        `encoded`: each body's canonical JSON, when it was made with the body."""
        self.receipts_written = list(receipts)  # the last append's: what a conflict is about
        if encoded is None:
            stored = [self.store.encode(body) for body in bodies]
        else:
            stored = [self.store.encode(body, data)
                      for body, data in zip(bodies, encoded, strict=True)]  # fmt: skip
        return self.store.recorder.insert_in(self.cursor, stored, receipts)

    def receipts(self, command_ids: Sequence[str]) -> dict[str, Receipt]:
        return self.store.recorder.receipts_in(self.cursor, command_ids)

    def envelopes_for(self, receipt: Receipt) -> list[Envelope]:
        rows = self.store.recorder.by_version_in(
            self.cursor, LEDGER_ID, receipt.first_version, receipt.last_version
        )
        return [self.store.decode(row) for row in rows]

    def facts_after(self, version: int, limit: int) -> list[dict[str, Any]]:
        """The stored bodies of the facts after `version` (up to `limit`), in order."""
        rows = self.store.recorder.by_version_in(self.cursor, LEDGER_ID, version + 1,
                                                 version + limit)  # fmt: skip
        return [self.store.decode_body(row) for row in rows]


class VersionConflictError(Exception):
    """Another writer recorded first: the caller re-decides against fresh state."""


class CommandIdTakenError(Exception):
    """The command id was recorded by another writer first."""


@dataclass(frozen=True)
class DecisionState:
    """The ledger as of `version` (what commands are decided against), and the hash of
    the fact at that version. Never changed: decide on `ledger.copy()`."""

    ledger: Ledger
    version: int = 0
    last_hash: str = GENESIS_HASH


def library_env(location: StoreLocation, timeouts: Timeouts | None = None) -> dict[str, str]:
    """The eventsourcing library's settings for a location (only the store reads them)."""
    lock = str(max(1, round((timeouts or Timeouts()).lock)))
    if location.kind == "sqlite":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": location.path,
            "SQLITE_LOCK_TIMEOUT": lock,
            "APPLICATION_RECORDER_TOPIC": "homeledger.adapters.recorders:LedgerSQLiteRecorder",
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": location.dbname,
        "POSTGRES_HOST": location.host,
        "POSTGRES_PORT": str(location.port),
        "POSTGRES_USER": location.user,
        "POSTGRES_PASSWORD": location.password,
        "POSTGRES_CONNECT_TIMEOUT": str(location.connect_timeout),
        "POSTGRES_LOCK_TIMEOUT": lock,
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_SCHEMA": location.schema,
        # Off on purpose: with it on, notification-log readers skip events under
        # concurrent writers (eventsourcing 9.5.6).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "no",
        "APPLICATION_RECORDER_TOPIC":
            "homeledger.adapters.postgres_recorder:LedgerPostgresRecorder",
        # The store creates the tables itself, once and serially (see LedgerStore).
        "CREATE_TABLE": "no",
    }


class LedgerStore:
    def __init__(self, location: StoreLocation, *, cipher_key: str | None = None,
                 create: bool = True, timeouts: Timeouts | None = None,
                 snapshot_secret: Callable[[], bytes | None] = lambda: None) -> None:  # fmt: skip
        self.location = location
        self.timeouts = timeouts or Timeouts(connect=location.connect_timeout)
        self._session_cursor: Any = None  # while a write session is open
        self._snapshot_secret = snapshot_secret  # read when a snapshot is first needed
        self._snapshot_key: object = _UNREAD
        if location.kind == "sqlite" and not create and not location.in_memory:
            if not location.exists():
                raise StoreUnavailableError(f"store {location.display} does not exist")
            _require_sqlite_ledger(location.path, location.display)
        env = library_env(location, self.timeouts)
        if not create:  # a reader never creates tables (PostgreSQL: see _prepare_postgres)
            env["CREATE_TABLE"] = "no"
        else:
            create_private(location)  # 0600: the library would create it 0644 (umask 022)
        if cipher_key:
            env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
            env["CIPHER_KEY"] = cipher_key
            env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
        try:
            self.factory = InfrastructureFactory.construct(Environment(APP_NAME, env))
            self.cipher = self.factory.cipher()
            if location.kind == "postgresql":
                self._bound_postgres()
        except ValueError:  # never echo the key itself
            raise ConfigError(
                "HOMELEDGER_CIPHER_KEY is not a base64 AES key of 16, 24 or 32 bytes"
            ) from None
        except (PersistenceError, OSError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailableError(
                f"cannot open store {location.display}: {_postgres_reason(location, exc)}"
            ) from None
        try:
            self.recorder = cast(LedgerRecorder, self.factory.application_recorder())
            self.snapshots = self.factory.aggregate_recorder("snapshots")
            if location.kind == "postgresql":
                self._prepare_postgres(cast("LedgerPostgresRecorder", self.recorder), create)
        except (PersistenceError, OSError, sqlite3.DatabaseError) as exc:
            self.factory.close()  # now, not when the collector finds the pool half open
            raise StoreUnavailableError(
                f"cannot open store {location.display}: {_postgres_reason(location, exc)}"
            ) from None
        self.compressor = self.factory.compressor()

    def _bound_postgres(self) -> None:
        """Every connection of the library's pool waits with a bound (before it opens)."""
        pool = cast(Any, self.factory).datastore.pool
        pool.connection_class = bounded(self.timeouts, f"PostgreSQL at {self.location.display}")
        pool.kwargs.update(connection_kwargs(self.timeouts))

    def _prepare_postgres(self, recorder: LedgerPostgresRecorder, create: bool) -> None:
        """Create the tables once, serially; a reader never needs the right to create."""
        snapshots = cast("PostgresAggregateRecorder", self.snapshots)
        ledger = recorder.tables_exist(snapshots.events_table_name)
        if not create:
            if not ledger:
                raise StoreUnavailableError(
                    f"store {self.location.display} holds no homeledger ledger yet"
                )
            return
        # A store made by an earlier homeledger gains the tables it lacks.
        if not (ledger and recorder.tables_exist(ALLOCATIONS_TABLE, ALLOCATIONS_AT_TABLE)):
            recorder.create_tables_serially(snapshots)

    def close(self) -> None:
        self.factory.close()

    # Encoding: canonical JSON, then compression and encryption when configured.

    def _seal_bytes(self, data: bytes) -> bytes:
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return data

    def _open_bytes(self, data: bytes) -> bytes:
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return data

    def encode(self, body: dict[str, Any], canonical: bytes | None = None) -> StoredEvent:
        """The stored event of a body; `canonical` is its canonical JSON when known."""
        return StoredEvent(
            originator_id=LEDGER_ID,
            originator_version=body["aggregate_version"],
            topic=topic_for(body["type"]),
            state=self._seal_bytes(canonical_json(body) if canonical is None else canonical),
        )

    def decode_body(self, stored: StoredEvent) -> dict[str, Any]:
        try:
            return cast(dict[str, Any], decode_json(self._open_bytes(stored.state)))
        except (ValueError, TypeError, KeyError, zlib.error) as exc:
            raise StoreUnavailableError(
                f"cannot read stored event version {stored.originator_version}: "
                f"{type(exc).__name__} (wrong or missing cipher key?)"
            ) from None

    def decode(self, notification: Notification) -> Envelope:
        body = self.decode_body(notification)
        try:
            return envelope_from_body(body, notification.id)
        except UnknownEventTypeError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # not a fact
            raise StoreUnavailableError(
                f"cannot read the stored event at position {notification.id}: "
                f"{type(exc).__name__} (run verify)"
            ) from None

    # Writing.

    def append(self, bodies: Sequence[dict[str, Any]], receipts: Sequence[Receipt],
               allocations: dict[str, Allocation], version: int,
               encoded: Sequence[bytes] | None = None) -> list[int]:  # fmt: skip
        """Insert facts, receipts and the allocations they changed atomically (the
        allocation table then current at `version`); positions of the facts, in order."""
        with self.writing() as session:
            positions = session.append(bodies, receipts, encoded)
            session.save_allocations(allocations, version)
            return positions

    @contextmanager
    def writing(self, *, commit: bool = True) -> Iterator[WriteSession]:
        """One write transaction holding the store's write lock from its start; committed
        at the end of the block (rolled back with `commit=False` or on any failure).

        VersionConflictError: another writer took a version first; CommandIdTakenError:
        another writer recorded a command id first; StoreBusyError: the lock stayed taken.
        """
        session: WriteSession | None = None
        try:
            with self.recorder.writing(commit=commit) as cursor:
                session = WriteSession(self, cursor)
                self._session_cursor = cursor  # lookups read what the session wrote
                try:
                    yield session
                finally:
                    self._session_cursor = None
        except (IntegrityError, sqlite3.IntegrityError):
            receipts = session.receipts_written if session else []
            if any(self.receipt(r.command_id) for r in receipts):
                raise CommandIdTakenError from None
            raise VersionConflictError from None
        except (OperationalError, sqlite3.OperationalError) as exc:
            if "locked" in str(exc) or "lock timeout" in str(exc):
                raise StoreBusyError(
                    "the store stayed locked by another writer; nothing was recorded, retry"
                ) from None
            raise StoreUnavailableError(f"store write failed: {first_line(exc)}") from None
        except (PersistenceError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailableError(f"store write failed: {first_line(exc)}") from None

    # Reading.

    def max_position(self) -> int:
        return self._guard(lambda: self.recorder.max_notification_id()) or 0

    def notifications(
        self, start: int = 1, stop: int | None = None, types: Sequence[str] = (),
        page: int = PAGE,
    ) -> Iterator[Notification]:  # fmt: skip
        """Stored facts from position `start` to `stop` (inclusive), paged, in order."""
        topics = [topic_for(t) for t in types]
        while True:
            rows = self._guard(
                lambda start=start: self.recorder.select_notifications(start, page, stop, topics)
            )
            yield from rows
            if len(rows) < page:
                return
            start = rows[-1].id + 1

    def envelopes(
        self, start: int = 1, stop: int | None = None, types: Sequence[str] = (),
        page: int = PAGE,
    ) -> Iterator[Envelope]:  # fmt: skip
        for notification in self.notifications(start, stop, types, page):
            yield self.decode(notification)

    def chain_problems(self) -> Iterator[tuple[int, str]]:
        """Every problem of the stored hash chain: (position, why)."""
        chain = StoredChain()
        for notification in self.notifications():
            try:
                body = self.decode_body(notification)
            except StoreUnavailableError:
                body = {}
            problem = chain.check(notification, body)
            if problem is not None:
                yield problem

    def receipt(self, command_id: str) -> Receipt | None:
        return cast(Receipt | None, self._guard(lambda: self.recorder.select_receipt(command_id)))

    def envelopes_of(self, segments: Sequence[tuple[str, int, int]]) -> Iterator[Envelope]:
        """The facts of segments ("new", first position, last position) and ("repeat",
        first version, last version), in order, read in pages (see Recorded)."""
        for kind, first, last in segments:
            if kind == "new":
                yield from self.envelopes(first, last)
                continue
            for start in range(first, last + 1, PAGE):
                end = min(last, start + PAGE - 1)
                yield from self.envelopes_for(Receipt("", "", start, end))

    def envelopes_for(self, receipt: Receipt) -> list[Envelope]:
        rows = self._guard(
            lambda: self.recorder.select_notifications_by_version(
                LEDGER_ID, receipt.first_version, receipt.last_version
            )
        )
        return [self.decode(row) for row in rows]

    # The decision state, from the latest trusted snapshot and the facts after it.

    def allocation(self, allocation_id: str) -> Allocation | None:
        """An allocation as the store keeps it (the lookup of every loaded ledger)."""
        if self._session_cursor is not None:
            row = self.recorder.allocation_in(self._session_cursor, allocation_id)
        else:
            row = self._guard(lambda: self.recorder.allocation(allocation_id))
        return None if row is None else allocation_of_row(row)

    def fact_at(self, position: int) -> Envelope | None:
        """The fact stored at a position, if any (read in the write session when one is
        open: no other connection may read beside it)."""
        found = self._positions(position, position)
        return self.decode(found[0]) if found else None

    def find_event(self, event_id: str) -> Envelope | None:
        """The fact stored with an event id, if any: read newest first, in pages (event
        ids are not indexed; the fact a correction names is most often a recent one)."""
        cursor = self._session_cursor
        last = self.max_position() if cursor is None else self.recorder.head_in(cursor)
        while last > 0:
            first = max(1, last - PAGE + 1)
            for stored in reversed(self._positions(first, last)):
                body = self.decode_body(stored)
                if body.get("event_id") == event_id:
                    return envelope_from_body(body, stored.id)
            last = first - 1
        return None

    def recorded_fact(self, position: int) -> RecordedFact | None:
        """What a reversal of the fact at `position` must match (the lookup of every
        loaded ledger's recorded facts)."""
        found = self.fact_at(position)
        return None if found is None else recorded_fact(found.fact, found.event_id)

    def _positions(self, first: int, last: int) -> list[Notification]:
        if self._session_cursor is not None:
            return self.recorder.positions_in(self._session_cursor, first, last)
        rows = self._guard(lambda: self.recorder.select_notifications(first, last - first + 1,
                                                                       last))  # fmt: skip
        return cast(list[Notification], rows)

    def load_state(self, after: DecisionState | None = None) -> DecisionState:
        """The ledger as of the last stored fact: from `after` (a state already loaded)
        or the latest trusted snapshot, and the facts recorded since, each checked as it
        is read: it continues the chain (version, prev_hash, its own hash) and it keeps
        every rule (`Ledger.admit`, the code that decides commands). A fact that does
        not is LedgerIntegrityError: nothing is decided on a ledger that breaks a rule.

        Its allocations are looked up in the store's allocation table (made again first
        when it is not current: a store written by an earlier homeledger). That table is
        current at the head, so the facts replayed after the starting point are checked
        against their allocations as they stood before them (the table's, less what
        those facts did), and the ledger looks them up in the table again afterwards."""
        if after is None:
            self._ensure_allocations()
        for _ in range(3):
            start = after or self._latest_snapshot() or DecisionState(self._empty_ledger())
            window = self._allocations_before(start) if start.version else _from_facts()
            if window is not None:
                return self._replay(start, window)
        # Writers kept moving the table: replay every fact, which needs no table.
        return self._replay(DecisionState(self._empty_ledger()), _from_facts())

    def _empty_ledger(self) -> Ledger:
        """A ledger before the first fact, finding the facts a reversal names here."""
        return Ledger(recorded=RecordedFacts(self.recorded_fact))

    def _replay(self, start: DecisionState, window: _Window) -> DecisionState:
        ledger, version, last_hash = None, start.version, start.last_hash
        while version < window.until:
            rows = self._guard(lambda after=version: self.recorder.select_events(
                LEDGER_ID, gt=after, lte=window.until, limit=PAGE))  # fmt: skip
            if not rows:
                break
            if ledger is None:
                ledger = start.ledger.copy()
                ledger.allocations.know(window.known)
            for stored in rows:
                body = self.decode_body(stored)
                _admit_stored(ledger, stored, body, version, last_hash)
                version, last_hash = stored.originator_version, body["hash"]
        if ledger is None:
            if (start.ledger.allocations.lookup == self.allocation
                    and start.ledger.recorded.lookup == self.recorded_fact):  # fmt: skip
                return start
            ledger = start.ledger.copy()
        # What the replay changed is current; the rest is looked up in the table (current
        # here too), not in the window's view of how things stood before.
        ledger.allocations = Allocations(self.allocation, ledger.allocations.changed)
        ledger.recorded = RecordedFacts(self.recorded_fact)
        return DecisionState(ledger, version, last_hash)

    def _allocations_before(self, start: DecisionState) -> _Window | None:
        """The allocations that the facts after `start` touch, as they stood at `start`
        (the table's, less what those facts did), up to the version the table is current
        at; None when a writer moved the table meanwhile (read it again)."""
        at = int(self._guard(lambda: self.recorder.allocations_at()) or 0)
        touches: list[tuple[str, dict[str, Any]]] = []
        version = start.version
        while version < at:
            rows = self._guard(lambda after=version: self.recorder.select_events(
                LEDGER_ID, gt=after, lte=at, limit=PAGE))  # fmt: skip
            if not rows:
                break
            for stored in rows:
                if stored.topic in _ALLOCATION_TOPICS:
                    body = self.decode_body(stored)
                    touches.append((str(body.get("type")), body.get("data") or {}))
                version = stored.originator_version
        known = allocations_before(touches, lambda ids: {i: self.allocation(i) for i in ids})
        if int(self._guard(lambda: self.recorder.allocations_at()) or 0) != at:
            return None
        return _Window(at, known)

    def _ensure_allocations(self) -> None:
        at = self._guard(lambda: self.recorder.allocations_at()) or 0
        if at != self.head_version():  # behind (an earlier homeledger), or ahead (facts removed)
            with self.writing() as session:
                session.rebuild_allocations()

    def head_version(self) -> int:
        """The ledger version of the last stored fact (0 before the first)."""
        rows = self._guard(lambda: self.recorder.select_events(LEDGER_ID, desc=True, limit=1))
        return int(rows[0].originator_version) if rows else 0

    # Ledger snapshots: a cache trusted only when a key the database does not hold
    # authenticates it (ledger_snapshot.snapshot_mac); without such a key none is
    # written or read, and every process replays the facts from the first.

    @property
    def snapshot_key(self) -> bytes | None:
        if self._snapshot_key is _UNREAD:
            self._snapshot_key = self._snapshot_secret()
        return cast(bytes | None, self._snapshot_key)

    def save_snapshot(self, state: DecisionState) -> None:
        key = self.snapshot_key
        if key is None:
            return  # a snapshot nobody could authenticate would never be trusted
        body = snapshot_body(key, state.version, state.last_hash, ledger_to_dict(state.ledger))
        snapshot = StoredEvent(LEDGER_ID, state.version, SNAPSHOT_TOPIC,
                               self._seal_bytes(canonical_json(body)))  # fmt: skip
        with contextlib.suppress(IntegrityError):  # another writer took the same snapshot
            self.snapshots.insert_events([snapshot])

    def _latest_snapshot(self) -> DecisionState | None:
        key = self.snapshot_key
        if key is None:
            return None
        rows = self._guard(lambda: self.snapshots.select_events(LEDGER_ID, desc=True, limit=3))
        for row in rows:  # the newest that authenticates (junk rows above it are skipped)
            state = self._trusted_snapshot(key, row)
            if state is not None:
                return state
        return None

    def _trusted_snapshot(self, key: bytes, row: StoredEvent) -> DecisionState | None:
        try:
            state = json.loads(self._open_bytes(row.state))
            if not authentic(key, state):
                return None
            ledger = ledger_from_dict(state["ledger"], Allocations(self.allocation),
                                      RecordedFacts(self.recorded_fact))  # fmt: skip
            version, last_hash = int(state["version"]), str(state["hash"])
        except Exception:  # noqa: BLE001 - a snapshot is only a cache: rebuild from facts
            return None
        if ledger is None or version != row.originator_version:
            return None
        # Bound to the chain: the fact it follows is stored with that very hash.
        facts = self._guard(
            lambda: self.recorder.select_events(LEDGER_ID, gt=version - 1, lte=version)
        )
        if len(facts) != 1 or self.decode_body(facts[0]).get("hash") != last_hash:
            return None
        return DecisionState(ledger, version, last_hash)

    def ledger_snapshots(self) -> list[tuple[int, Any]]:
        """Every stored ledger snapshot row, oldest first: (version, its originator id)."""
        rows = self._guard(lambda: _all_snapshot_rows(self.snapshots))
        return [(row.originator_version, row.originator_id) for row in rows]

    def read_snapshot(self, version: int) -> dict[str, Any] | None:
        """The stored snapshot at `version` as written (None if it cannot be read)."""
        rows = self._guard(
            lambda: self.snapshots.select_events(LEDGER_ID, gt=version - 1, lte=version)
        )
        try:
            return cast(dict[str, Any], json.loads(self._open_bytes(rows[0].state)))
        except Exception:  # noqa: BLE001 - an unreadable snapshot is a finding for verify
            return None

    # Receipts, in version order (for verify).

    def receipts(self) -> Iterator[Receipt]:
        after = 0
        while True:
            page = self._guard(lambda after=after: self.recorder.select_receipts(after, PAGE))
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].first_version

    # The relay's position table.

    def tracking_recorder(self) -> TrackingRecorder:
        """The library's tracking table (where the relay keeps its position), created
        if missing: on PostgreSQL serially, under the store's schema lock."""
        recorder = self.factory.tracking_recorder()
        try:
            recorder.max_tracking_id("homeledger-probe")
        except (ProgrammingError, OperationalError):
            if self.location.kind == "postgresql":
                cast("LedgerPostgresRecorder", self.recorder).create_tables_serially(recorder)
            else:
                cast(Any, recorder).create_table()
        return recorder

    def _guard(self, read: Any) -> Any:
        try:
            return read()
        except (PersistenceError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailableError(f"store read failed: {first_line(exc)}") from None


_UNREAD = object()
_ALLOCATION_TOPICS = ("homeledger:FundsAllocated", "homeledger:AllocationReleased")


@dataclass(frozen=True)
class _Window:
    """Where a replay ends (the version the allocation table is current at) and the
    allocations the replayed facts touch, as they stood before them."""

    until: int
    known: dict[str, Allocation | None]


def _from_facts() -> _Window:
    """A replay from the first fact: every allocation comes from the facts themselves."""
    return _Window(2**63 - 1, {})


def allocations_before(
    touches: Iterable[tuple[str, dict[str, Any]]],
    current: Callable[[list[str]], dict[str, Allocation | None]],
) -> dict[str, Allocation | None]:
    """The allocations that facts (their type and data, in order) touch, as they stood
    before those facts, given how they stand after them (`current`, the allocation
    table's, which is current with them): one they made did not exist; the others had
    not yet had what they released."""
    made: set[str] = set()
    released: dict[str, Decimal] = {}
    for kind, data in touches:
        key = str(data.get("allocation_id"))
        if kind == FundsAllocated.TYPE:
            made.add(key)
        elif kind == AllocationReleased.TYPE:
            released[key] = released.get(key, Decimal(0)) + Decimal(str(data.get("amount", 0)))
    known: dict[str, Allocation | None] = dict.fromkeys(made)
    now = current(sorted(set(released) - made))
    for key, amount in released.items():
        if key not in made:
            found = now.get(key)
            known[key] = None if found is None else replace(found, released=found.released - amount)
    return known


def _admit_stored(ledger: Ledger, stored: StoredEvent, body: dict[str, Any], version: int,
                  last_hash: str) -> None:  # fmt: skip
    """Apply one stored fact that continues the chain after (`version`, `last_hash`) and
    keeps every rule; LedgerIntegrityError naming what it breaks otherwise."""
    where = f"the stored fact of version {stored.originator_version}"
    problem = link_problem(body, version + 1, last_hash, stored_version=stored.originator_version)
    if problem is not None:
        raise LedgerIntegrityError(f"{where} does not continue the chain ({problem})")
    fact = envelope_from_body(body, 0).fact
    try:
        ledger.admit(fact)
    except DomainError as broken:
        raise LedgerIntegrityError(f"{where} ({fact.TYPE}) breaks [{broken.rule}]: "
                                   f"{broken.message}") from None  # fmt: skip
    ledger.apply(fact)


def _all_snapshot_rows(recorder: Any) -> list[StoredEvent]:
    rows: list[StoredEvent] = []
    while page := recorder.select_events(LEDGER_ID, gt=rows[-1].originator_version if rows
                                         else None, limit=PAGE):  # fmt: skip
        rows += page
        if len(page) < PAGE:
            break
    return rows


def _require_sqlite_ledger(path: str, display: str) -> None:
    """Refuse an SQLite file that holds no homeledger events, without changing it."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stored_events'"
            ).fetchone()
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot open store {display}: {first_line(exc)}") from None
    if found is None:
        raise StoreUnavailableError(f"no homeledger store at {display}")


def _postgres_reason(location: StoreLocation, exc: BaseException) -> str:
    """The server's own reason when the pool only says it timed out (no password shown)."""
    reason = first_line(exc)
    if location.kind != "postgresql" or "couldn't get a connection" not in reason:
        return reason
    import psycopg

    try:
        psycopg.connect(
            dbname=location.dbname, host=location.host, port=location.port,
            user=location.user, password=location.password, connect_timeout=2,
        ).close()  # fmt: skip
    except psycopg.Error as direct:
        text = first_line(direct)
        if location.password:
            text = text.replace(location.password, "***")
        return text
    return reason


def allocation_row(a: Allocation) -> AllocationRow:
    """An allocation as an allocation table keeps it (amounts in cents)."""
    return (a.allocation_id, a.initiative, a.year, int(a.amount / CENT), int(a.released / CENT))


def allocation_of_row(row: AllocationRow) -> Allocation:
    """The allocation an allocation table's row holds."""
    allocation_id, initiative, year, amount, released = row
    return Allocation(allocation_id, initiative, int(year), Decimal(amount) * CENT,
                      Decimal(released) * CENT)  # fmt: skip


Select = Callable[[str, list[str]], Iterable[Any]]  # SQL with `?` marks and its parameters


def allocations_by_id(select: Select, table: str,
                      allocation_ids: Iterable[str]) -> dict[str, Allocation | None]:  # fmt: skip
    """The allocations of these ids in an allocation `table` (None for an id with none),
    read in bulk through `select`, 500 ids a query."""
    found: dict[str, Allocation | None] = dict.fromkeys(allocation_ids)
    unique = list(found)
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        rows = select(f"SELECT * FROM {table} WHERE allocation_id IN "
                      f"({', '.join('?' * len(chunk))})", chunk)  # fmt: skip
        found.update((row[0], allocation_of_row(row)) for row in rows)
    return found


def allocation_ids_named(data: Iterable[Any]) -> list[str]:
    """The allocation ids that facts' `data` name (each looked up by the rules), to read
    ahead; anything that is not such a `data` is passed over."""
    named = (d.get("allocation_id") if isinstance(d, dict) else None for d in data)
    return [allocation_id for allocation_id in named if isinstance(allocation_id, str)]
