"""Seals: a recorded digest of the whole chain up to a position.

`homeledger seal` records a LedgerSealed fact holding the digest of every fact up to
the head; it is published like any fact, so a copy outside the database witnesses
the history before it. `verify` recomputes each seal's digest from the stored chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from homeledger.adapters.hash_chain import GENESIS_HASH


def seal_digest(position: int, count: int, last_hash: str) -> str:
    """The digest a seal records: how many facts up to which position, and their chain."""
    return hashlib.sha256(f"homeledger-seal:{position}:{count}:{last_hash}".encode()).hexdigest()


def digest_of(position: int, bodies: Iterable[dict[str, Any]]) -> str:
    """The seal digest of the facts at positions 1..`position` (their stored bodies)."""
    count, last_hash = 0, GENESIS_HASH
    for body in bodies:
        count, last_hash = count + 1, str(body.get("hash"))
    return seal_digest(position, count, last_hash)
