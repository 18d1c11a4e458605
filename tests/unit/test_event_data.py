"""Facts on the wire: fact <-> wire data, and the stored body of a fact (its envelope).

What a store or a stream carries is JSON; amounts travel as two-decimal strings.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.envelope import envelope_from_body, new_body
from homeledger.adapters.hash_chain import LEDGER_ID
from homeledger.domain import commands as c
from homeledger.domain.events import EVENTS, DomainEvent, event_data, event_from_data
from tests import strategies as s
from tests.helpers import WIRE_AMOUNT


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


# The stored body of a fact.


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
