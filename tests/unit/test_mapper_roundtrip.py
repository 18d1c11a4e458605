"""Round trips: fact <-> wire data, envelope body <-> stored bytes, ledger <-> snapshot.

Also that the hash chain covers every stored field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.cryptography import AESCipher
from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.envelope import envelope_from_body, new_body
from homeledger.adapters.hash_chain import (
    ENVELOPE_FIELDS,
    HASHED_FIELDS,
    LEDGER_ID,
    canonical_json,
    chain_hash,
)
from homeledger.adapters.ledger_snapshot import SNAPSHOT_FORMAT, ledger_from_dict, ledger_to_dict
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.cli.bootstrap import open_store
from homeledger.domain import commands as c
from homeledger.domain.errors import DomainError
from homeledger.domain.events import (
    EVENTS,
    DomainEvent,
    LedgerSealed,
    event_data,
    event_from_data,
)
from homeledger.domain.ledger import Allocations, Ledger, replay
from tests import strategies as s

WIRE_AMOUNT = re.compile(r"-?[0-9]+\.[0-9]{2}")



def test_there_is_a_strategy_for_every_event_and_command() -> None:
    assert set(s.EVENT_STRATEGIES) == set(EVENTS.types())
    assert set(c.COMMAND_CLASSES.values()) | {c.SealLedger} == set(s.COMMAND_STRATEGIES)


# Facts <-> wire data.


@pytest.mark.parametrize("event_type", sorted(EVENTS.types()))
@given(data=st.data())
def test_event_data_round_trips(event_type: str, data: st.DataObject) -> None:
    fact = data.draw(s.EVENT_STRATEGIES[event_type])
    wire = event_data(fact)
    # What a store or a stream carries is JSON: go through bytes.
    carried = json.loads(json.dumps(wire))
    back = event_from_data(event_type, type(fact).SCHEMA_VERSION, carried)
    assert type(back) is type(fact)
    assert back == fact
    assert event_data(back) == wire
    for name, value in wire.items():
        if isinstance(getattr(fact, name), Decimal):
            assert isinstance(value, str) and WIRE_AMOUNT.fullmatch(value), (name, value)
        assert not isinstance(value, float), name


@given(s.events())
def test_wire_data_names_every_field_and_no_other(fact: DomainEvent) -> None:
    assert set(event_data(fact)) == set(type(fact).model_fields)


def test_unknown_types_and_future_versions_are_refused() -> None:
    from homeledger.domain.events import UnknownEventTypeError

    with pytest.raises(UnknownEventTypeError, match="unknown event type 'FundsStolen'"):
        event_from_data("FundsStolen", 1, {})
    with pytest.raises(UnknownEventTypeError, match="newer than this code knows"):
        event_from_data("LedgerSealed", 99, {"position": 1, "digest": "x"})


# Envelope bodies <-> stored events.


@pytest.fixture(scope="module", params=["plain", "encrypted"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerStore]:
    path: Path = tmp_path_factory.mktemp("mapper") / "ledger.db"
    key = AESCipher.create_key(32) if request.param == "encrypted" else None
    ledger_store = open_store(Settings(store=f"sqlite:///{path}", cipher_key=key))
    yield ledger_store
    ledger_store.close()


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    return new_body(
        draw(s.events()),
        event_id=draw(st.uuids()),
        version=draw(st.integers(1, 10**9)),
        recorded_at=draw(s.recorded_times),
        actor=draw(s.texts),
        command_id=draw(s.tokens),
        correlation_id=draw(s.tokens),
        prev_hash=draw(s.digests),
    )


@given(body=bodies(), position=st.integers(1, 10**12))
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


@given(fact=s.events(), recorded_at=s.recorded_times)
def test_body_carries_the_fact_and_its_business_date(fact: DomainEvent, recorded_at: Any) -> None:
    body = new_body(fact, event_id=UUID(int=1), version=3, recorded_at=recorded_at, actor="ops",
                    command_id="c-1", correlation_id="k-1", prev_hash="0" * 64)  # fmt: skip
    envelope = envelope_from_body(body, 42)
    assert envelope.fact == fact
    assert envelope.recorded_at == recorded_at
    assert envelope.recorded_at.utcoffset() is not None
    assert body["recorded_at"].endswith("Z")
    utc_day = envelope.recorded_at.date()
    assert envelope.effective_date == fact.business_date(utc_day)
    assert (envelope.type, envelope.aggregate_id) == (fact.TYPE, str(LEDGER_ID))


def _changed(value: Any, data: st.DataObject) -> Any:
    """A different value of the same shape."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + data.draw(st.sampled_from([1, -1, 10**6]))
    if isinstance(value, str):
        return data.draw(st.sampled_from([value + "0", value[:-1], value.upper() + "x"]))
    if isinstance(value, dict):
        if not value:
            return {"added": 1}
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _changed(value[key], data)}
    raise AssertionError(f"no change for {value!r}")


def test_every_stored_field_is_hashed() -> None:
    body = new_body(
        LedgerSealed(position=1, digest="ab"), event_id=UUID(int=1), version=1,
        recorded_at=datetime(2021, 7, 1, tzinfo=UTC), actor="ops", command_id="c",
        correlation_id="k", prev_hash="0" * 64,
    )  # fmt: skip
    assert set(HASHED_FIELDS) == set(body) - {"hash"}


@given(body=bodies(), field=st.sampled_from(HASHED_FIELDS), data=st.data())
def test_chain_hash_changes_when_any_hashed_field_changes(
    body: dict[str, Any], field: str, data: st.DataObject
) -> None:
    changed = {**body, field: _changed(body[field], data)}
    if changed[field] == body[field]:  # "x"[:-1] + ... can come back equal: nothing changed
        return
    assert chain_hash(changed) != chain_hash(body)


@given(body=bodies())
def test_chain_hash_ignores_key_order_and_derived_fields(body: dict[str, Any]) -> None:
    reordered = dict(reversed(list(body.items())))
    assert chain_hash(reordered) == chain_hash(body)
    assert chain_hash({**body, "position": 9, "scope": "x", "hash": "f" * 64}) == body["hash"]


# Ledger <-> snapshot.


def _ledger(history: list[c.Command]) -> tuple[Ledger, int, list[DomainEvent]]:
    """The ledger the accepted commands of a history build; how many were accepted."""
    ledger, accepted, facts = Ledger(), 0, []
    for command in history:
        try:
            new = ledger.decide(command)
        except DomainError:
            continue
        accepted += 1
        for fact in new:
            ledger.apply(fact)
            facts.append(fact)
    return ledger, accepted, facts


@given(s.ledger_histories())
def test_snapshot_round_trips(history: list[c.Command]) -> None:
    ledger, accepted, facts = _ledger(history)
    assert accepted >= 3  # init, the first acquisition and a registration are always valid
    snapshot = ledger_to_dict(ledger)
    # Allocations are not in a snapshot (the store keeps them): hand them over as kept.
    assert ledger_from_dict(snapshot, ledger.allocations) == ledger
    # Snapshots are stored as JSON: through bytes too, and to the same strings.
    stored = json.loads(canonical_json(snapshot))
    restored = ledger_from_dict(stored, ledger.allocations)
    assert restored == ledger
    assert restored is not None
    assert ledger_to_dict(restored) == snapshot
    assert replay(facts) == ledger


@given(s.ledger_histories(max_size=10), s.ledger_commands())
def test_a_restored_ledger_decides_as_the_original(
    history: list[c.Command], command: c.Command
) -> None:
    ledger, _, _ = _ledger(history)
    restored = ledger_from_dict(json.loads(canonical_json(ledger_to_dict(ledger))),
                                ledger.allocations.copy())  # fmt: skip
    assert restored is not None
    outcomes = []
    for state in (ledger, restored):
        try:
            facts = state.decide(command)
        except DomainError as refused:
            outcomes.append((type(refused), str(refused)))
        else:
            # Generated allocation ids differ; everything else must not.
            outcomes.append(("accepted", [event_data(f) | {"allocation_id": None} for f in facts]))
    assert outcomes[0] == outcomes[1]


def test_a_snapshot_of_another_format_is_ignored() -> None:
    snapshot = ledger_to_dict(Ledger())
    assert ledger_from_dict(snapshot, Allocations()) == Ledger()
    assert ledger_from_dict({**snapshot, "format": SNAPSHOT_FORMAT + 1}, Allocations()) is None
    assert ledger_from_dict({}, Allocations()) is None
