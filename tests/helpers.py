"""Helpers shared by tests: checks and builders that are not fixtures."""

from __future__ import annotations

from homeledger.adapters.store import LedgerStore


def assert_chain_intact(store: LedgerStore) -> int:
    """The stored chain is intact (versions 1, 2, 3... at increasing positions, each
    fact continuing the one before it); the number of facts."""
    problems = list(store.chain_problems())
    assert problems == [], problems
    return sum(1 for _ in store.notifications())
