"""A fact's stored body <-> the store's encoding of it, plain and encrypted at rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.cryptography import AESCipher
from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.envelope import envelope_from_body
from homeledger.adapters.hash_chain import ENVELOPE_FIELDS, LEDGER_ID, chain_hash
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.cli.bootstrap import open_store
from homeledger.domain.events import event_from_data
from tests import strategies as s


@pytest.fixture(scope="module", params=["plain", "encrypted"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerStore]:
    """Encoding writes nothing: the examples share one store of each kind."""
    path = tmp_path_factory.mktemp("encoding") / "ledger.db"
    key = AESCipher.create_key(32) if request.param == "encrypted" else None
    ledger_store = open_store(Settings(store=f"sqlite:///{path}", cipher_key=key))
    yield ledger_store
    ledger_store.close()


@given(body=s.bodies(), position=st.integers(1, 10**12))
def test_body_round_trips_through_the_store_encoding(
    store: LedgerStore, body: dict[str, Any], position: int
) -> None:
    stored = store.encode(body)
    assert stored.originator_id == LEDGER_ID
    assert stored.originator_version == body["aggregate_version"]
    assert stored.topic == "homeledger:" + body["type"]
    if store.cipher is not None:
        assert body["hash"].encode() not in stored.state  # sealed, not plain JSON
    decoded = store.decode_body(stored)
    assert decoded == body
    envelope = envelope_from_body(decoded, position)
    assert envelope == envelope_from_body(body, position)
    assert envelope.body() == body
    assert envelope.fact == event_from_data(body["type"], body["schema_version"], body["data"])
    assert chain_hash(envelope.body()) == body["hash"]
    published = envelope.to_dict()
    assert list(published) == list(ENVELOPE_FIELDS)
    assert (published["position"], published["scope"]) == (position, envelope.fact.scope())
    assert json.loads(envelope.to_json()) == published
