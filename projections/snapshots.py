"""Snapshots of the read models' state, for reads as of a past position.

A keyed model (balances, double entry) holds current state, one row per key; to
answer "as of position N" it starts from its latest snapshot at or below N and
replays the few facts between. A snapshot of each such model is taken whenever it
passes a multiple of `every` positions, in the same transaction as the rows of that
page, so a point-in-time read replays at most about `every` facts.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence

import orjson

from homeledger.adapters.envelope import Envelope, decode_json
from homeledger.projections.model import Model, Rows, normalise

DEFAULT_SNAPSHOT_EVERY = 5000
Snapshot = tuple[str, int, Rows]  # model name, position, state


def encode_state(rows: Rows) -> bytes:
    """Compressed JSON; read back by `decode_state` (orjson writes it several times
    faster than the standard library, which takes what orjson refuses)."""
    try:
        text = orjson.dumps(rows)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer beyond 64 bits
        text = json.dumps(rows, separators=(",", ":")).encode()
    return zlib.compress(text, 6)


def decode_state(blob: bytes) -> Rows:
    data = decode_json(zlib.decompress(bytes(blob)))
    return {name: normalise(rows) for name, rows in data.items()}


def apply_page(
    models: Mapping[str, Model], envelopes: Sequence[Envelope], every: int
) -> list[Snapshot]:
    """Apply the facts to each model (those at or below its position are skipped); the
    snapshots the snapshotted models passed on the way, in order."""
    taken: list[Snapshot] = []
    for name, model in models.items():
        mark = model.position // every
        for envelope in envelopes:
            if envelope.position <= model.position:
                continue
            model.apply(envelope)
            if model.SNAPSHOTTED and envelope.position // every > mark:
                mark = envelope.position // every
                taken.append((name, envelope.position, model.state_rows()))
    return taken
