"""The event store: the eventsourcing library's recorders, our mapper, and snapshots.

SQLite or PostgreSQL, chosen by the store URL; the same code runs on both.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.utils import Environment

from homeledger.adapters.envelope import (
    GENESIS_HASH,
    LEDGER_ID,
    TOPIC_PREFIX,
    Envelope,
    canonical_json,
    envelope_from_body,
    topic_for,
)
from homeledger.adapters.recorders import LedgerPostgresRecorder, LedgerRecorder, Receipt
from homeledger.adapters.settings import APP_NAME, ConfigError, StoreLocation
from homeledger.adapters.snapshots import ledger_from_dict, ledger_to_dict
from homeledger.domain.ledger import Ledger

SNAPSHOT_TOPIC = TOPIC_PREFIX + "snapshot"
PAGE = 1000


class StoreUnavailableError(Exception):
    """The store cannot be reached, opened or read (exit 4)."""


class StoreBusyError(Exception):
    """Another writer held the store past the lock timeout; retry later (exit 3)."""


class VersionConflictError(Exception):
    """Another writer recorded first: the caller re-decides against fresh state."""


class CommandIdTakenError(Exception):
    """The command id was recorded by another writer first."""


@dataclass
class Head:
    """The ledger state as of `version`, and the hash of the fact at that version."""

    ledger: Ledger
    version: int = 0
    last_hash: str = GENESIS_HASH


class LedgerStore:
    def __init__(self, location: StoreLocation, *, cipher_key: str | None = None,
                 create: bool = True) -> None:  # fmt: skip
        self.location = location
        if location.kind == "sqlite" and not create:
            path = location.env["SQLITE_DBNAME"]
            if path != ":memory:" and not Path(path).exists():
                raise StoreUnavailableError(f"store {location.display} does not exist")
            if path != ":memory:":
                _require_sqlite_ledger(path, location.display)
        env = dict(location.env)
        if not create:  # a reader never creates tables (PostgreSQL: see _prepare_postgres)
            env["CREATE_TABLE"] = "no"
        if cipher_key:
            env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
            env["CIPHER_KEY"] = cipher_key
            env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
        try:
            self.factory = InfrastructureFactory.construct(Environment(APP_NAME, env))
            self.cipher = self.factory.cipher()
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
            if isinstance(self.recorder, LedgerPostgresRecorder):
                self._prepare_postgres(self.recorder, create)
        except (PersistenceError, OSError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailableError(
                f"cannot open store {location.display}: {_postgres_reason(location, exc)}"
            ) from None
        self.compressor = self.factory.compressor()

    def _prepare_postgres(self, recorder: LedgerPostgresRecorder, create: bool) -> None:
        """Create the tables once, serially; a reader never needs the right to create."""
        snapshots = cast(PostgresAggregateRecorder, self.snapshots)
        if recorder.tables_exist(snapshots.events_table_name):
            return
        if not create:
            raise StoreUnavailableError(
                f"store {self.location.display} holds no homeledger ledger yet"
            )
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

    def encode(self, body: dict[str, Any]) -> StoredEvent:
        return StoredEvent(
            originator_id=LEDGER_ID,
            originator_version=body["aggregate_version"],
            topic=topic_for(body["type"]),
            state=self._seal_bytes(canonical_json(body)),
        )

    def decode_body(self, stored: StoredEvent) -> dict[str, Any]:
        try:
            # Canonical JSON is ASCII: decoding it first spares json its encoding sniffing.
            return cast(dict[str, Any], json.loads(self._open_bytes(stored.state).decode()))
        except (ValueError, TypeError, KeyError, zlib.error) as exc:
            raise StoreUnavailableError(
                f"cannot read stored event version {stored.originator_version}: "
                f"{type(exc).__name__} (wrong or missing cipher key?)"
            ) from None

    def decode(self, notification: Notification) -> Envelope:
        return envelope_from_body(self.decode_body(notification), notification.id)

    # Writing.

    def append(self, bodies: Sequence[dict[str, Any]], receipts: Sequence[Receipt]) -> list[int]:
        """Insert facts and receipts atomically; positions of the facts, in order."""
        stored = [self.encode(body) for body in bodies]
        try:
            positions = self.recorder.insert_events(stored, receipts=receipts)
        except IntegrityError:
            if any(self.recorder.select_receipt(r.command_id) for r in receipts):
                raise CommandIdTakenError from None
            raise VersionConflictError from None
        except OperationalError as exc:
            if "locked" in str(exc) or "lock timeout" in str(exc):
                raise StoreBusyError(
                    "the store stayed locked by another writer; nothing was recorded, retry"
                ) from None
            raise StoreUnavailableError(f"store write failed: {_first_line(exc)}") from None
        except PersistenceError as exc:
            raise StoreUnavailableError(f"store write failed: {_first_line(exc)}") from None
        return list(positions or [])

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

    def receipt(self, command_id: str) -> Receipt | None:
        return cast(Receipt | None, self._guard(lambda: self.recorder.select_receipt(command_id)))

    def envelopes_for(self, receipt: Receipt) -> list[Envelope]:
        rows = self._guard(
            lambda: self.recorder.select_notifications_by_version(
                LEDGER_ID, receipt.first_version, receipt.last_version
            )
        )
        return [self.decode(row) for row in rows]

    # The ledger state, from the latest snapshot and the facts after it.

    def load_head(self) -> Head:
        head = self._latest_snapshot() or Head(Ledger())
        return self.fast_forward(head)

    def fast_forward(self, head: Head) -> Head:
        while True:
            rows = self._guard(
                lambda: self.recorder.select_events(LEDGER_ID, gt=head.version, limit=PAGE)
            )
            for stored in rows:
                body = self.decode_body(stored)
                head.ledger.apply(envelope_from_body(body, 0).fact)
                head.version = stored.originator_version
                head.last_hash = body["hash"]
            if len(rows) < PAGE:
                return head

    def save_snapshot(self, head: Head) -> None:
        state = {"version": head.version, "hash": head.last_hash,
                 "ledger": ledger_to_dict(head.ledger)}  # fmt: skip
        snapshot = StoredEvent(LEDGER_ID, head.version, SNAPSHOT_TOPIC,
                               self._seal_bytes(canonical_json(state)))  # fmt: skip
        with contextlib.suppress(IntegrityError):  # another writer took the same snapshot
            self.snapshots.insert_events([snapshot])

    def _latest_snapshot(self) -> Head | None:
        rows = self._guard(lambda: self.snapshots.select_events(LEDGER_ID, desc=True, limit=1))
        if not rows:
            return None
        try:
            state = json.loads(self._open_bytes(rows[0].state))
            ledger = ledger_from_dict(state["ledger"])
            version, last_hash = int(state["version"]), str(state["hash"])
        except Exception:  # noqa: BLE001 - a snapshot is only a cache: rebuild from facts
            return None
        if ledger is None or version != rows[0].originator_version:
            return None
        # Trust it only if the fact it claims to follow is stored with that very hash.
        facts = self._guard(
            lambda: self.recorder.select_events(LEDGER_ID, gt=version - 1, lte=version)
        )
        if len(facts) != 1 or self.decode_body(facts[0]).get("hash") != last_hash:
            return None
        return Head(ledger, version, last_hash)

    def _guard(self, read: Any) -> Any:
        try:
            return read()
        except (PersistenceError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailableError(f"store read failed: {_first_line(exc)}") from None


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
        raise StoreUnavailableError(f"cannot open store {display}: {_first_line(exc)}") from None
    if found is None:
        raise StoreUnavailableError(f"no homeledger store at {display}")


def _postgres_reason(location: StoreLocation, exc: BaseException) -> str:
    """The server's own reason when the pool only says it timed out (no password shown)."""
    reason = _first_line(exc)
    if location.kind != "postgresql" or "couldn't get a connection" not in reason:
        return reason
    env = location.env
    try:
        psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"], connect_timeout=2,
        ).close()  # fmt: skip
    except psycopg.Error as direct:
        text = _first_line(direct)
        if env["POSTGRES_PASSWORD"]:
            text = text.replace(env["POSTGRES_PASSWORD"], "***")
        return text
    return reason


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
