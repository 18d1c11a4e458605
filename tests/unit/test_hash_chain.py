"""The hash chain covers every stored field, in any key order, and nothing derived."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.envelope import new_body
from homeledger.adapters.hash_chain import HASHED_FIELDS, chain_hash
from homeledger.domain.events import LedgerSealed
from tests import strategies as s


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


@given(body=s.bodies(), field=st.sampled_from(HASHED_FIELDS), data=st.data())
def test_chain_hash_changes_when_any_hashed_field_changes(
    body: dict[str, Any], field: str, data: st.DataObject
) -> None:
    changed = {**body, field: _changed(body[field], data)}
    if changed[field] == body[field]:  # "x"[:-1] + ... can come back equal: nothing changed
        return
    assert chain_hash(changed) != chain_hash(body)


@given(body=s.bodies())
def test_chain_hash_ignores_key_order_and_derived_fields(body: dict[str, Any]) -> None:
    reordered = dict(reversed(list(body.items())))
    assert chain_hash(reordered) == chain_hash(body)
    assert chain_hash({**body, "position": 9, "scope": "x", "hash": "f" * 64}) == body["hash"]
