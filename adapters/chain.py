"""The hash chain over stored facts: walking it, locating the first break, sealing.

Each stored body's hash covers its content and the previous fact's hash, and
versions run 1, 2, 3... in position order (one ledger, one sequence). A seal
records a digest of the chain up to a position, so a copy outside the database
(the published LedgerSealed fact) witnesses everything before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeledger.adapters.envelope import (
    GENESIS_HASH,
    HASHED_FIELDS,
    LEDGER_ID,
    chain_hash,
    topic_for,
)

if TYPE_CHECKING:
    from homeledger.adapters.store import LedgerStore


@dataclass(frozen=True)
class ChainBreak:
    """The first position where the stored chain is not what was recorded."""

    position: int
    reason: str


@dataclass(frozen=True)
class ChainLink:
    position: int
    version: int
    body: dict[str, Any]
    topic: str = ""


def seal_digest(position: int, count: int, last_hash: str) -> str:
    """The digest a seal records: how many facts up to which position, and their chain."""
    return hashlib.sha256(f"homeledger-seal:{position}:{count}:{last_hash}".encode()).hexdigest()


def digest_up_to(store: LedgerStore, position: int) -> str:
    count, last_hash = 0, GENESIS_HASH
    for link in links(store, stop=position):
        count, last_hash = count + 1, str(link.body.get("hash"))
    return seal_digest(position, count, last_hash)


def links(store: LedgerStore, stop: int | None = None) -> Iterator[ChainLink]:
    for notification in store.notifications(1, stop):
        yield ChainLink(notification.id, notification.originator_version,
                        _decode_or_empty(store, notification), notification.topic)  # fmt: skip


def _decode_or_empty(store: LedgerStore, notification: Any) -> dict[str, Any]:
    try:
        return store.decode_body(notification)
    except Exception:  # noqa: BLE001 - an unreadable body is reported as a break
        return {}


def check_link(link: ChainLink, expected_version: int, prev_hash: str, topic: str) -> str | None:
    """Why this link breaks the chain, or None when it is intact."""
    body = link.body
    if not body or any(name not in body for name in (*HASHED_FIELDS, "hash")):
        return "stored event cannot be read or lacks fields"
    if len(body) != len(HASHED_FIELDS) + 1:  # a field outside the hash would go unseen
        return "stored event has fields its hash does not cover"
    if link.version != expected_version:
        return f"stored version {link.version} where {expected_version} was expected"
    if body["aggregate_version"] != expected_version:
        return (f"the event's aggregate_version is {body['aggregate_version']} where "
                f"{expected_version} was expected (stored version {link.version})")  # fmt: skip
    if body["aggregate_id"] != str(LEDGER_ID):
        return "belongs to another aggregate"
    if topic != topic_for(str(body["type"])):
        return "stored topic does not match the event type"
    if body["prev_hash"] != prev_hash:
        return "prev_hash does not match the hash of the fact before it"
    if chain_hash(body) != body["hash"]:
        return "content does not match its hash"
    return None
