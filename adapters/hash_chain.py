"""The hash chain over recorded facts: one check, used by the store's `verify` and by
every consumer of the stream.

Each fact's stored body is its envelope without `position` and `scope` (both derived).
Its `hash` is SHA-256 over the canonical JSON of every other field of the body, and
those include `prev_hash`, the hash of the fact before it, so editing, deleting,
reordering or inserting a fact breaks the chain there. Versions run 1, 2, 3... in
position order: one ledger, one sequence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

import orjson

GENESIS_HASH = "0" * 64
LEDGER_ID = uuid5(UUID("6f0d6f36-52d8-4cf4-9d0e-5f2ad1c1e0a1"), "homeledger-ledger")

# The order in which envelope fields are printed and published.
ENVELOPE_FIELDS = (
    "event_id", "type", "schema_version", "position", "scope", "aggregate_id",
    "aggregate_version", "effective_date", "recorded_at", "actor", "command_id",
    "correlation_id", "data", "prev_hash", "hash",
)  # fmt: skip
DERIVED_FIELDS = ("position", "scope")
BODY_FIELDS = tuple(f for f in ENVELOPE_FIELDS if f not in DERIVED_FIELDS)
HASHED_FIELDS = tuple(f for f in BODY_FIELDS if f != "hash")

# The definition of the canonical form: the standard library's encoder with these
# options (built once: json.dumps with options builds a new encoder on every call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_SORTED = orjson.OPT_SORT_KEYS
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)  # compact_json's


def canonical_json(value: Any) -> bytes:
    """One byte form for one value: sorted keys, no spaces, ASCII only.

    The bytes are those of the standard library's encoder above. orjson writes the same
    bytes several times faster for the values facts are made of (dicts with text keys,
    lists, text, integers, booleans, null) as long as the text is ASCII without DEL;
    anything else (non-ASCII text, which orjson leaves unescaped, DEL, which the
    standard library escapes, floats, whose forms differ, integers beyond 64 bits,
    lone surrogates, subclasses, tuples) goes through the standard library's encoder."""
    return _encoded(value, _SORTED, _CANONICAL)


def compact_json(value: Any) -> bytes:
    """`json.dumps(value, separators=(",", ":"))` as bytes, keys in the order given: the
    form an envelope is published and printed in (one line), made as `canonical_json`
    is made (orjson where it writes the same bytes)."""
    return _encoded(value, 0, _COMPACT)


def _encoded(value: Any, option: int, encoder: json.JSONEncoder) -> bytes:
    if _plain(value):
        try:
            out = orjson.dumps(value, option=option)
        except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
            pass
        else:
            if out.isascii() and b"\x7f" not in out:
                return out
    return encoder.encode(value).encode()


def _plain(value: Any) -> bool:
    """Whether `value` is made only of dict (text keys), list, str, int, bool and None,
    exactly those types: the values orjson and the standard library write alike."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    # Plain loops: a third faster than all() over a generator or map, per fact written.
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            kind = type(item)  # a scalar checked here: no call per field
            if not (kind is str or kind is int or kind is bool or item is None or _plain(item)):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110
            if not _plain(item):
                return False
        return True
    return False


def chain_hash(body: dict[str, Any]) -> str:
    """The hash of a fact's body (every hashed field, `prev_hash` included)."""
    return hashlib.sha256(canonical_json({k: body[k] for k in HASHED_FIELDS})).hexdigest()


_BEFORE_HASH = b',"prev_hash":'  # the field that follows "hash" in sorted order


def hashed(body: dict[str, Any]) -> tuple[str, bytes]:
    """The hash of a new fact's body (which has no `hash` yet), and the canonical JSON of
    the body with that hash: what the store keeps, from one encoding instead of two.

    In sorted order `hash` comes right before `prev_hash`; the last `,"prev_hash":` of
    the hashed form is the top-level one (only the text of `recorded_at` and `type` and
    the integer `schema_version` follow it, and a quote inside canonical text is always
    escaped), so the hash is spliced in there."""
    if len(body) != len(HASHED_FIELDS) or any(k not in body for k in HASHED_FIELDS):
        raise ValueError("a new fact's body has exactly the hashed fields")
    hashed_form = canonical_json(body)
    digest = hashlib.sha256(hashed_form).hexdigest()
    at = hashed_form.rindex(_BEFORE_HASH)
    stored = b"".join((hashed_form[:at], b',"hash":"', digest.encode(), b'"', hashed_form[at:]))
    return digest, stored


BROKEN_LINK = "prev_hash does not match the hash of the fact before it"


def link_problem(body: dict[str, Any], expected_version: int, prev_hash: str, *,
                 stored_version: int | None = None) -> str | None:  # fmt: skip
    """Why this body does not continue the chain after `prev_hash`, or None.

    `stored_version` is the version a store keeps beside the body, when there is one.
    """
    if not body or any(name not in body for name in BODY_FIELDS):
        return "the fact cannot be read or lacks fields"
    if len(body) != len(BODY_FIELDS):  # a field outside the hash would go unseen
        return "the fact has fields its hash does not cover"
    if stored_version is not None and stored_version != expected_version:
        return f"stored version {stored_version} where {expected_version} was expected"
    if body["aggregate_version"] != expected_version:
        why = "a fact is missing or repeated" if stored_version is None else (
            f"stored version {stored_version}")  # fmt: skip
        return (f"the fact's aggregate_version is {body['aggregate_version']} where "
                f"{expected_version} was expected ({why})")  # fmt: skip
    if body["aggregate_id"] != str(LEDGER_ID):
        return "the fact belongs to another aggregate"
    if body["prev_hash"] != prev_hash:
        return BROKEN_LINK
    if chain_hash(body) != body["hash"]:
        return "the content does not match its hash"
    return None


def body_of(envelope: dict[str, Any]) -> dict[str, Any]:
    """The body of a published envelope (the envelope without its derived fields)."""
    return {k: v for k, v in envelope.items() if k not in DERIVED_FIELDS}


@dataclass
class ChainWalk:
    """Walks a chain fact by fact from the genesis: what the next fact must continue."""

    expected_version: int = 1
    prev_hash: str = GENESIS_HASH
    count: int = 0

    def step(self, body: dict[str, Any], stored_version: int | None = None) -> str | None:
        """Check one fact and move past it; why it breaks the chain, or None."""
        problem = link_problem(body, self.expected_version, self.prev_hash,
                               stored_version=stored_version)  # fmt: skip
        version = body.get("aggregate_version") if stored_version is None else stored_version
        self.expected_version = (version if isinstance(version, int) else self.expected_version) + 1
        self.prev_hash = str(body.get("hash", ""))
        self.count += 1
        return problem
