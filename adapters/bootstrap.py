"""The one place that wires the ledger together from settings. Nothing connects at import."""

from __future__ import annotations

from homeledger.adapters.application import Clock, LedgerApplication, utc_now
from homeledger.adapters.settings import Settings, store_location
from homeledger.adapters.store import LedgerStore


def open_store(settings: Settings, *, create: bool = True) -> LedgerStore:
    key = settings.cipher_key.get_secret_value() if settings.cipher_key else None
    return LedgerStore(store_location(settings.store), cipher_key=key, create=create)


def build_application(
    settings: Settings, *, create: bool = True, clock: Clock = utc_now
) -> LedgerApplication:
    return LedgerApplication(
        open_store(settings, create=create),
        actor=settings.effective_actor(),
        clock=clock,
        snapshot_every=settings.snapshot_every,
    )
