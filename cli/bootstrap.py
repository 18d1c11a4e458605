"""The one place that turns Settings into the objects the commands use.

Nothing connects at import: each object is built on first use (`Services`) and closed
with the command. The CLI parses strings into Settings and domain values, asks this
module for what it needs, calls it and prints; tests and the bench build the same
objects here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeledger.adapters.ledger_snapshot import snapshot_key
from homeledger.adapters.settings import Settings, store_location
from homeledger.adapters.store import LedgerStore
from homeledger.projections.as_of import PointInTime
from homeledger.projections.consumer_store import AppliedLog, is_consumer_db
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.source import EventSource

if TYPE_CHECKING:  # the recording side (and its cryptography) is imported when used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from homeledger.adapters.application import Clock, LedgerApplication
    from homeledger.adapters.seals import SealKeys


class ConsumerStoreGivenError(Exception):
    """The store given is a consumer-side store: it has no events to record or check."""


def open_store(settings: Settings, *, create: bool = True) -> LedgerStore:
    """The event store of `settings.store` (with `create`, made if it is not there)."""
    key = settings.cipher_key.get_secret_value() if settings.cipher_key else None
    location = store_location(settings.store)
    return LedgerStore(location, cipher_key=key, create=create,
                       timeouts=settings.timeouts(location),
                       snapshot_secret=lambda: snapshot_secret(settings))  # fmt: skip


def snapshot_secret(settings: Settings) -> bytes | None:
    """The key that authenticates ledger snapshots, from a secret the database does not
    hold: the cipher key, else the seal key; None without either (no snapshots)."""
    if settings.cipher_key is not None:
        return snapshot_key(b"cipher:" + settings.cipher_key.get_secret_value().encode())
    seal = seal_private_key(settings)
    if seal is not None:
        return snapshot_key(b"seal:" + seal.private_bytes_raw())
    return None


def build_application(
    settings: Settings, *, create: bool = True, clock: Clock | None = None
) -> LedgerApplication:
    from homeledger.adapters.application import LedgerApplication, utc_now
    from homeledger.adapters.idempotency import Fingerprints, fingerprint_key

    return LedgerApplication(
        open_store(settings, create=create),
        actor=settings.effective_actor(),
        clock=clock or utc_now,
        snapshot_every=settings.ledger_snapshot_every,
        seal_key=lambda: seal_private_key(settings),
        fingerprints=Fingerprints(
            fingerprint_key(settings.cipher_key.get_secret_value()) if settings.cipher_key else None
        ),
    )


def seal_private_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The key that signs seals (HOMELEDGER_SEAL_KEY), if one is configured."""
    if settings.seal_key is None:
        return None
    from homeledger.adapters.seals import load_private_key

    return load_private_key(settings.seal_key.get_secret_value())


def seal_public_keys(settings: Settings) -> SealKeys | None:
    """The public keys `verify` checks seals with (HOMELEDGER_SEAL_PUBLIC_KEY), if any."""
    if settings.seal_public_key is None:
        return None
    from homeledger.adapters.seals import load_public_keys

    return load_public_keys(settings.seal_public_key)


def open_projection_db(settings: Settings) -> ProjectionDB:
    """The read models' database: the store's own, or a consumer store."""
    location = store_location(settings.store)
    return ProjectionDB(location, settings.timeouts(location))


@dataclass
class Projections:
    """The stored read models of one database and what keeps and reads them."""

    source: EventSource  # the store, or a consumer store's applied log
    db: ProjectionDB
    runner: ProjectionRunner
    reader: PointInTime
    store: LedgerStore | None = None  # None for a consumer store


def projections_of(settings: Settings, store: LedgerStore | None, db: ProjectionDB, *,
                   page: int | None = None) -> Projections:  # fmt: skip
    """The read models of `db`, built from `store` (or, for a consumer store, from the
    envelopes it applied); `page` facts per transaction (default: the settings')."""
    source: EventSource = store if store is not None else AppliedLog(db)
    runner = ProjectionRunner(source, db, page=page or settings.projection_page,
                              snapshot_every=settings.projection_snapshot_every)  # fmt: skip
    return Projections(source, db, runner, PointInTime(source, db), store)


@dataclass
class Services:
    """What one command uses, built from its settings on first use, closed with it."""

    settings: Settings
    clock: Clock | None = None  # default: the application's (UTC now)
    _app: LedgerApplication | None = None
    _store: LedgerStore | None = None
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    def application(self) -> LedgerApplication:
        """The application for recording: creates an empty store on first use (never in
        a consumer-side store)."""
        if self._app is None:
            self._refuse_consumer_store()
            self._app = build_application(self.settings, clock=self.clock)
            self._closers.append(self._app.store.close)
        return self._app

    def store(self) -> LedgerStore:
        """The store for reading: it must already exist."""
        if self._app is not None:
            return self._app.store
        if self._store is None:
            self._store = open_store(self.settings, create=False)
            self._closers.append(self._store.close)
        return self._store

    def _refuse_consumer_store(self) -> None:
        location = store_location(self.settings.store)
        if location.in_memory or not location.exists():
            return
        if is_consumer_db(self.projection_db()):
            raise ConsumerStoreGivenError(
                f"{location.display} is a consumer-side store built by 'project --from-nats': "
                "facts are recorded in the ledger's store; give the ledger's --store"
            )

    def projections(self, *, consumer_ok: bool = False, page: int | None = None) -> Projections:
        """The read models of --store. With `consumer_ok` it may be a consumer-side store
        (built by `project --from-nats`), read the same way."""
        location = store_location(self.settings.store)
        store = None if location.exists() and not location.in_memory else self.store()
        db = self.projection_db()
        if store is None and is_consumer_db(db):
            if not consumer_ok:
                raise ConsumerStoreGivenError(
                    f"{location.display} is a consumer-side store built by 'project "
                    "--from-nats': it has no events; give the ledger's --store"
                )
            return projections_of(self.settings, None, db, page=page)
        return projections_of(self.settings, store or self.store(), db, page=page)

    def projection_db(self) -> ProjectionDB:
        """The read models' database of --store (a consumer store is made if missing)."""
        db = open_projection_db(self.settings)
        self._closers.append(db.close)
        return db

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()
